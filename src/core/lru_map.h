// A map that remembers the order of use and gives up its least recently used entries beyond a limit on their
// number, on the sum of their charges (bytes), or both: the bookkeeping every in-memory cache repeats.
//
// Keys may repeat (the HTTP cache keeps one entry per URL and Vary key, found by URL): find_if picks among
// the entries of a key. Replacing is the caller's decision (erase_first, then insert), and so is eviction
// (evict() after an insert, with a callback where an entry owns something outside memory, such as a file).
// Not thread-safe: callers that share one lock it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <list>
#include <unordered_map>
#include <utility>
#include <vector>

namespace cumulo::core {

struct LruLimits {
  size_t max_entries = std::numeric_limits<size_t>::max();
  uint64_t max_bytes = std::numeric_limits<uint64_t>::max();
  size_t min_entries = 0;  // evict() never goes below this many, even over max_bytes
};

template <typename K, typename V, typename Hash = std::hash<K>, typename KeyEqual = std::equal_to<K>>
class LruMap {
 public:
  struct Entry {
    K key;
    V value;
    uint64_t charge = 0;
  };

  explicit LruMap(LruLimits limits = {}) : limits_(limits) {}
  LruMap(const LruMap&) = delete;
  LruMap& operator=(const LruMap&) = delete;

  // The first entry of `key` (in order of use), made the most recently used; nullptr when there is none.
  V* find(const K& key) {
    return find_if(key, [](const V&) { return true; });
  }
  // The first entry of `key` whose value satisfies pred, made the most recently used.
  template <typename Pred>
  V* find_if(const K& key, Pred&& pred) {
    auto it = first_match(key, pred);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return &it->second->value;
  }

  // Adds an entry as the most recently used, beside any others of the same key. Evicts nothing: see evict().
  V& insert(K key, V value, uint64_t charge = 0) {
    order_.push_front(Entry{std::move(key), std::move(value), charge});
    bytes_ += charge;
    index_.emplace(order_.front().key, order_.begin());
    return order_.front().value;
  }

  // Removes the first entry of `key` whose value satisfies pred, calling on_erase(entry) before; whether one
  // was found.
  template <typename Pred, typename OnErase = void (*)(Entry&)>
  bool erase_first(
      const K& key, Pred&& pred, OnErase&& on_erase = [](Entry&) {}) {
    auto it = first_match(key, pred);
    if (it == index_.end()) return false;
    on_erase(*it->second);
    erase_at(it);
    return true;
  }
  // Every entry of `key`; how many.
  size_t erase(const K& key) {
    size_t n = 0;
    while (erase_first(key, [](const V&) { return true; })) ++n;
    return n;
  }
  // Every entry for which pred(key, value) holds, calling on_erase(entry) before each; how many.
  template <typename Pred, typename OnErase = void (*)(Entry&)>
  size_t erase_if(
      Pred&& pred, OnErase&& on_erase = [](Entry&) {}) {
    std::vector<typename List::iterator> doomed;
    for (auto it = order_.begin(); it != order_.end(); ++it)
      if (pred(std::as_const(it->key), std::as_const(it->value))) doomed.push_back(it);
    for (auto victim : doomed) {
      on_erase(*victim);
      erase_at(index_of(victim));
    }
    return doomed.size();
  }

  // Removes least recently used entries while over a limit (and above min_entries), calling on_evict(entry)
  // before each; how many.
  template <typename OnEvict = void (*)(Entry&)>
  size_t evict(OnEvict&& on_evict = [](Entry&) {}) {
    size_t n = 0;
    while (order_.size() > limits_.min_entries &&
           (order_.size() > limits_.max_entries || bytes_ > limits_.max_bytes)) {
      auto victim = std::prev(order_.end());
      on_evict(*victim);
      erase_at(index_of(victim));
      ++n;
    }
    return n;
  }

  // Removes least recently used entries while pred(entry) holds (entries idle for too long, say), calling
  // on_evict(entry) before each; how many.
  template <typename Pred, typename OnEvict = void (*)(Entry&)>
  size_t evict_while(
      Pred&& pred, OnEvict&& on_evict = [](Entry&) {}) {
    size_t n = 0;
    while (!order_.empty() && pred(std::as_const(order_.back()))) {
      on_evict(order_.back());
      erase_at(index_of(std::prev(order_.end())));
      ++n;
    }
    return n;
  }

  void clear() {
    index_.clear();
    order_.clear();
    bytes_ = 0;
  }

  size_t size() const { return order_.size(); }
  bool empty() const { return order_.empty(); }
  uint64_t bytes() const { return bytes_; }  // the sum of the charges
  const LruLimits& limits() const { return limits_; }

 private:
  using List = std::list<Entry>;  // front: the most recently used
  using Index = std::unordered_multimap<K, typename List::iterator, Hash, KeyEqual>;

  // The index entry of the first entry of `key` (in index order) whose value satisfies pred; end() if none.
  template <typename Pred>
  typename Index::iterator first_match(const K& key, Pred& pred) {
    auto [first, last] = index_.equal_range(key);
    for (auto it = first; it != last; ++it)
      if (pred(std::as_const(it->second->value))) return it;
    return index_.end();
  }
  typename Index::iterator index_of(typename List::iterator entry) {
    auto [first, last] = index_.equal_range(entry->key);
    for (auto it = first; it != last; ++it)
      if (it->second == entry) return it;
    return index_.end();  // unreachable: every entry is indexed
  }
  void erase_at(typename Index::iterator it) {
    auto entry = it->second;
    bytes_ -= entry->charge;
    index_.erase(it);
    order_.erase(entry);
  }

  LruLimits limits_;
  List order_;
  Index index_;
  uint64_t bytes_ = 0;
};

}  // namespace cumulo::core
