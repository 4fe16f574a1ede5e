"""Test harnesses that need more than one process: network namespaces with sshd (root)."""
