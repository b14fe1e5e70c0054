// 18. A C++ hello world with iostream. memcheck: "All heap blocks were
// freed" (libstdc++'s emergency pool is released by __gnu_cxx::__freeres).
#include <iostream>

int main() {
    std::cout << "hello, world" << std::endl;
    return 0;
}
