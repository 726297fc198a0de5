#pragma once
// The slot a small least-recently-used cache fills next: a new entry while there is room, else
// the entry with the smallest last_use (the caches of backend::dense_separable and
// op::backend_operator, a handful of entries each).
#include <cstddef>
#include <vector>

namespace softdiff::backend::detail {

template <class Entry>
Entry& lru_slot(std::vector<Entry>& entries, std::size_t capacity) {
  if (entries.size() < capacity) return entries.emplace_back();
  Entry* e = &entries[0];
  for (auto& c : entries)
    if (c.last_use < e->last_use) e = &c;
  return *e;
}

}  // namespace softdiff::backend::detail
