// Removal in O(1) from a vector of pointers whose elements know their own position (an `index` member): the
// connection and session lists of the HTTP server, the HTTP client and the gateway's workers, where order
// does not matter and a connection must leave its list without a search.
#pragma once

#include <cstddef>
#include <utility>

namespace cumulo::core {

// Removes list[i]: the last element takes its place and learns it through its `index`; the order of the
// others is not kept. Returns the removed element (a unique_ptr hands over ownership).
template <typename List>
typename List::value_type swap_remove(List& list, size_t i) {
  typename List::value_type removed = std::move(list[i]);
  if (i + 1 != list.size()) {
    list[i] = std::move(list.back());
    list[i]->index = i;
  }
  list.pop_back();
  return removed;
}

}  // namespace cumulo::core
