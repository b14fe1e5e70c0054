// Allocations from a namespaced class method, a function template and a
// function inlined into its caller: the report must name them, demangled,
// with file and line.
#include <cstddef>
#include <cstdlib>

#define NOINLINE __attribute__((noinline, noclone))

void *volatile keep[8];

namespace ns {
class Widget {
  public:
    static Widget *make(int n);
    char *buf;
};

NOINLINE Widget *Widget::make(int n) {
    Widget *w = new Widget(); // @site:widget_new
    w->buf = static_cast<char *>(std::malloc(n)); // @site:widget_buf
    return w;
}
} // namespace ns

template <typename T> NOINLINE T *make_array(std::size_t n) {
    return new T[n]; // @site:make_array
}

static inline __attribute__((always_inline)) void *inlined_alloc(std::size_t n) {
    return std::malloc(n); // @site:inlined_alloc
}

NOINLINE void *calls_inlined(std::size_t n) {
    void *p = inlined_alloc(n); // @site:calls_inlined
    keep[5] = p;
    return p;
}

int main() {
    keep[0] = ns::Widget::make(111);
    keep[1] = make_array<double>(13);
    keep[2] = calls_inlined(222);
    return 0;
}
