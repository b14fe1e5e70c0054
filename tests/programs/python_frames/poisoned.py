"""Allocates while this frame's `previous` link points at memory that is not
mapped, then at a buffer of garbage: a frame reader that follows pointers
without checking them crashes here; CPython itself never looks. 3.11 only
(the offsets are 3.11's: PyFrameObject.f_frame at 24, _PyInterpreterFrame.previous at 48)."""
import ctypes
import sys

keep = []
garbage = ctypes.create_string_buffer(b"\xff\x7f\x00\x10" * 64)


def victim(target):
    f = sys._getframe()
    iframe = ctypes.c_void_p.from_address(id(f) + 24).value
    link = ctypes.c_void_p.from_address(iframe + 48)
    saved = link.value
    link.value = target
    keep.append([target] * 1000)  # @site:poisoned
    keep.append({"n": len(keep)})
    link.value = saved


def main():
    for _ in range(50):
        victim(0xDEAD0000)
        victim(ctypes.addressof(garbage))
        victim(0x7FFF_FFFF_F000)
    print(len(keep))


main()
