// For tests/tests/html_report.rs: leaks whose names an HTML page must
// escape. The leaking function is `operator<<`, the second one a template
// (`hold<Box<int> >`), the test compiles this file under a name full of
// `<`, `&` and `"`, and runs it with a `<script>` argument.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

struct Leaky {
    int n;
};

template <typename T> struct Box {
    T value;
};

// Each call leaks the buffer it formats into.
__attribute__((noinline)) std::ostream &operator<<(std::ostream &os, const Leaky &l) {
    char *buf = new char[40 + l.n];  // never deleted
    std::memset(buf, 0, 40 + l.n);
    std::snprintf(buf, 40, "leaky %d", l.n);
    return os << buf << '\n';
}

template <typename T> __attribute__((noinline)) T *hold() {
    T *p = static_cast<T *>(std::malloc(sizeof(T) * 10));
    std::memset(p, 0, sizeof(T) * 10);
    return p;
}

static void *volatile kept;

int main() {
    for (int i = 0; i < 3; i++) std::cout << Leaky{i};
    kept = hold<Box<int> >();
    kept = nullptr;
    return 0;
}
