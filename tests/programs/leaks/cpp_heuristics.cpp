// 12. memcheck's interior-pointer heuristics for C++, libstdc++'s current ABI.
//   - new D[4], D with a destructor: new[] stores the count (4) first and
//     returns block+8: 40 bytes, reachable via the `newarray` heuristic;
//   - a C with two polymorphic bases, held only by a B* (block+16, B's
//     vtable pointer): 40 bytes, reachable via `multipleinheritance`;
//   - a block with its length (64) in the first word, held by block+8:
//     72 bytes, reachable via `length64` (checked before newarray);
//   - std::string held by a global pointer: the string object (32 bytes) and
//     its buffer (101 bytes), pointed to at their start: plainly reachable;
//   - a std::string constructed in a global buffer and never destroyed: its
//     201-byte buffer, pointed to at its start: plainly reachable.
// Still reachable: 486 bytes in 6 blocks, 152 of them via heuristics.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

struct D {
    long v = 0;
    ~D() { v = -1; }
};
struct A {
    virtual ~A() {}
    long a = 1;
};
struct B {
    virtual ~B() {}
    long b = 2;
};
struct C : A, B {
    long c = 3;
};

D *volatile g_array;
B *volatile g_second_base;
uint64_t *volatile g_length64;
std::string *volatile g_string;
alignas(std::string) static unsigned char g_string_storage[sizeof(std::string)];

__attribute__((noinline)) static void make() {
    g_array = new D[4];
    g_second_base = new C;
    uint64_t *l = static_cast<uint64_t *>(std::malloc(72));
    std::memset(l, 0, 72);
    l[0] = 64;
    g_length64 = l + 1;
    g_string = new std::string(100, 'x');
    new (g_string_storage) std::string(200, 'y');
}

__attribute__((noinline)) static void scrub() {
    volatile char junk[16384];
    std::memset(const_cast<char *>(junk), 0, sizeof junk);
}

int main() {
    make();
    scrub();
    return 0;
}
