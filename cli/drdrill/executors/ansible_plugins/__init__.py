"""Ansible plugins shipped with drdrill (package data: ansible loads them by directory)."""
