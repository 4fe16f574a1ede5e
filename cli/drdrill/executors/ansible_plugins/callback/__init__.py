"""Callback plugins; ansible finds them through ANSIBLE_CALLBACK_PLUGINS (this directory)."""
