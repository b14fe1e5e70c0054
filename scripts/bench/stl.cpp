// Benchmark: C++ containers, 1M operations: std::map<int, std::string>
// inserts (strings past the small-string buffer, so each allocates), erases
// and lookups, and vectors grown by push_back and dropped now and then.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

int main(int argc, char **argv) {
    long ops = argc > 1 ? atol(argv[1]) : 1000000;
    std::map<int, std::string> m;
    std::vector<std::vector<int>> vs(64);
    unsigned seed = 1;
    long sum = 0;
    for (long i = 0; i < ops; i++) {
        seed = seed * 1103515245u + 12345u;
        int key = (seed >> 8) % 50000;
        switch (i % 4) {
        case 0:
        case 1:
            m[key] = std::string(20 + (seed >> 24) % 40, 'a' + i % 26);
            break;
        case 2: {
            auto it = m.find(key);
            if (it != m.end()) { sum += it->second.size(); m.erase(it); }
            break;
        }
        case 3: {
            auto &v = vs[key % 64];
            v.push_back(key);
            if (v.size() > 500) std::vector<int>().swap(v);
            break;
        }
        }
    }
    printf("%ld %zu\n", sum, m.size());
    return 0;
}
