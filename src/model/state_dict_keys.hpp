#pragma once
// Key-level handling of checkpoints before they are matched against a model: the prefixes that training
// wrappers put in front of every key, and a one-line diagnosis when the keys do not match.
#include <cstddef>
#include <string>
#include <vector>

#include "model/checkpoint.hpp"

namespace adaptdiff::model {

/// Prefixes that wrappers add to every key of a saved module: "module." (torch.nn.DataParallel and
/// DistributedDataParallel), "_forward_module." (Lightning/Fabric wrappers), "model." (training modules that
/// hold the network as `self.model`).
const std::vector<std::string>& wrapper_prefixes();

/// When every key of `dict` starts with one wrapper prefix, removes it from every key, repeatedly (so
/// "module.module." or "_forward_module.module." are removed too), and returns what was removed ("" when
/// nothing was). A dict with no keys, or whose keys do not all share one wrapper prefix, is left as is.
std::string strip_wrapper_prefix(StateDict& dict);

/// One line saying why the keys of `dict` do not match `expected_keys`, or "" when nothing stands out:
/// e.g. "all 616 keys start with 'backbone.' (no key of the model does; without it 616 of 616 match)". Looks at
/// the first dotted component shared by most keys (at least half) that no expected key starts with.
std::string diagnose_key_prefix(const StateDict& dict, const std::vector<std::string>& expected_keys);

/// Appends "\n  <title> (<n>):" and at most `max_listed` of `items`, one per line, then
/// "\n    ... and <k> more" when some were left out. Nothing when `items` is empty.
void append_key_list(std::string& out, const std::string& title, const std::vector<std::string>& items,
                     std::size_t max_listed = 24);

}  // namespace adaptdiff::model
