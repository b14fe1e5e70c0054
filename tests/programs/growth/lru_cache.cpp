// An LRU cache driven by ~2.5 s of std::string-key lookups.
//
// usage: lru_cache bounded|unbounded
//
// 250 ticks of ~10 ms, 40 lookups each. Keys come from a fixed sequence over
// a key space that widens with the tick, so most lookups miss and insert a
// new entry (a 21-char key, which does not fit the small-string buffer, and
// a 256-byte value). `bounded` evicts the least recently used entry beyond
// 256 entries (heap flat once full: steady, or early-growth for the fill);
// `unbounded` never evicts (10,000 entries, ~4 MB, growing).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <list>
#include <string>
#include <thread>
#include <unordered_map>

struct Cache {
    using Item = std::pair<std::string, std::string>;
    std::list<Item> order; // most recently used first
    std::unordered_map<std::string, std::list<Item>::iterator> index;
    size_t bound; // 0: no bound
    unsigned long hits = 0, misses = 0;

    explicit Cache(size_t b) : bound(b) {}

    __attribute__((noinline)) const std::string &get(const std::string &key) {
        auto it = index.find(key);
        if (it != index.end()) {
            hits++;
            order.splice(order.begin(), order, it->second);
            return it->second->second;
        }
        misses++;
        std::string value = render(key); // @site:lru_value
        order.emplace_front(key, std::move(value));
        index.emplace(key, order.begin());
        if (bound && order.size() > bound) {
            index.erase(order.back().first);
            order.pop_back();
        }
        return order.front().second;
    }

    static std::string render(const std::string &key) {
        std::string v(256, ' ');
        std::snprintf(&v[0], v.size(), "<item key=\"%s\">", key.c_str());
        return v;
    }
};

int main(int argc, char **argv) {
    bool bounded = argc > 1 && std::strcmp(argv[1], "bounded") == 0;
    Cache cache(bounded ? 256 : 0);
    uint32_t state = 12345;
    unsigned long fresh = 0;
    size_t checksum = 0;
    for (int tick = 0; tick < 250; tick++) {
        for (int i = 0; i < 40; i++) {
            state = state * 1103515245u + 12345u;
            // One lookup in eight repeats a recent key; the rest are new.
            unsigned long id = (state >> 8) % 8 == 0 && fresh > 16 ? fresh - 1 - (state >> 12) % 16 : fresh++;
            char buf[32];
            std::snprintf(buf, sizeof buf, "session-key-%09lu", id);
            std::string key(buf); // 21 chars: heap-allocated
            std::string response = "HTTP/1.1 200 OK\r\n" + cache.get(key); // churn
            checksum += response.size();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::printf("hits=%lu misses=%lu entries=%zu checksum=%zu\n", cache.hits, cache.misses,
                cache.order.size(), checksum);
    return 0;
}
