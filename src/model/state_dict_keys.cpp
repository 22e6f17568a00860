#include "model/state_dict_keys.hpp"

#include <map>
#include <unordered_set>

namespace adaptdiff::model {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

/// The wrapper prefix every key starts with, or "".
std::string common_wrapper_prefix(const StateDict& dict) {
  if (dict.empty()) return "";
  for (const auto& prefix : wrapper_prefixes()) {
    bool all = true;
    for (const auto& entry : dict) all = all && starts_with(entry.first, prefix) && entry.first.size() > prefix.size();
    if (all) return prefix;
  }
  return "";
}

}  // namespace

const std::vector<std::string>& wrapper_prefixes() {
  static const std::vector<std::string> prefixes{"module.", "_forward_module.", "model."};
  return prefixes;
}

std::string strip_wrapper_prefix(StateDict& dict) {
  std::string removed;
  for (std::string prefix = common_wrapper_prefix(dict); !prefix.empty(); prefix = common_wrapper_prefix(dict)) {
    for (auto& entry : dict) entry.first.erase(0, prefix.size());
    removed += prefix;
  }
  return removed;
}

std::string diagnose_key_prefix(const StateDict& dict, const std::vector<std::string>& expected_keys) {
  if (dict.empty()) return "the file holds no keys";
  std::map<std::string, size_t> by_head;  // "head." -> number of keys starting with it
  for (const auto& entry : dict) {
    const auto dot = entry.first.find('.');
    if (dot != std::string::npos) ++by_head[entry.first.substr(0, dot + 1)];
  }
  std::string head;
  size_t count = 0;
  for (const auto& [h, n] : by_head)
    if (n > count) head = h, count = n;
  if (head.empty() || 2 * count < dict.size()) return "";
  const std::unordered_set<std::string> expected(expected_keys.begin(), expected_keys.end());
  for (const auto& key : expected_keys)
    if (starts_with(key, head)) return "";  // the model has keys under this head: not a stray prefix
  size_t match_without = 0;
  for (const auto& entry : dict)
    if (starts_with(entry.first, head) && expected.count(entry.first.substr(head.size()))) ++match_without;
  const std::string who = count == dict.size() ? "all " + std::to_string(count) + " keys"
                                               : std::to_string(count) + " of " + std::to_string(dict.size()) + " keys";
  return who + " start with '" + head + "' (no key of the model does; without it " + std::to_string(match_without) +
         " of " + std::to_string(expected_keys.size()) + " model keys match)";
}

void append_key_list(std::string& out, const std::string& title, const std::vector<std::string>& items,
                     std::size_t max_listed) {
  if (items.empty()) return;
  out += "\n  " + title + " (" + std::to_string(items.size()) + "):";
  for (size_t i = 0; i < items.size() && i < max_listed; ++i) out += "\n    " + items[i];
  if (items.size() > max_listed) out += "\n    ... and " + std::to_string(items.size() - max_listed) + " more";
}

}  // namespace adaptdiff::model
