"""Leaks 50 bytes objects the way a buggy C extension does (a reference
taken and never dropped): unreachable from anything, never freed."""
import ctypes

incref = ctypes.pythonapi.Py_IncRef
incref.argtypes = [ctypes.py_object]


def leak(n):
    for i in range(n):
        incref(bytes(100 + i))  # the leaked line


leak(50)
print("leaked 50")
