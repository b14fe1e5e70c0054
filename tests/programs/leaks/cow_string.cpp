// 12b. std::string with libstdc++'s old (copy-on-write) ABI, built with
// -D_GLIBCXX_USE_CXX11_ABI=0: the string holds a pointer 24 bytes into its
// buffer (past length, capacity and refcount), which memcheck's `stdstring`
// heuristic recognizes.
//   - new std::string(100, 'x') in a global: the object (8 bytes, plainly
//     reachable) and its 24 + 100 + 1 = 125-byte buffer (via stdstring);
//   - a string constructed in a global buffer and never destroyed: its
//     24 + 200 + 1 = 225-byte buffer (via stdstring).
// Still reachable: 358 bytes in 3 blocks, 350 in 2 via stdstring.
#include <cstring>
#include <new>
#include <string>

std::string *volatile g_string;
alignas(std::string) static unsigned char g_string_storage[sizeof(std::string)];

__attribute__((noinline)) static void make() {
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
