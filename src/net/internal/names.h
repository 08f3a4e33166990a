// The names the net component accepts and makes: stack, group, zone and member names, and the namespaces'.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

namespace cumulo::net::internal {

// Letters, digits, '-' and '_', 1 to `max` characters: the stack file's rule for names. No '.' (the separator
// of namespace names) and no '/' (a namespace name is a file in /run/netns).
inline bool valid_name(std::string_view name, size_t max) {
  return !name.empty() && name.size() <= max && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

// "cu-STACK.": every namespace of the stack starts with it. The stack's name ends at the '.', which stack
// names cannot hold, so "cu-web." is never a prefix of stack "web-db"'s namespaces, as "cu-web-" would be.
inline std::string namespace_prefix(std::string_view stack) {
  return "cu-" + std::string(stack) + ".";
}

}  // namespace cumulo::net::internal
