#pragma once
// Reader for PyTorch zip checkpoints (`torch.save(state_dict)`, format version 3) and `torch.save`d dicts of
// NumPy arrays, without Python.
//
// LibTorch's torch::pickle_load rejects the pickled `collections.OrderedDict` root that every
// `torch.save(module.state_dict())` produces ("Expected GenericDict but got None", LibTorch 1.13), so this
// module opens the zip records with caffe2::serialize::PyTorchStreamReader and runs its own minimal pickle
// machine over `<stem>/data.pkl`: just the opcodes and globals a state dict of plain tensors needs
// (dicts/OrderedDicts, tuples, strings, ints, `torch._utils._rebuild_tensor_v2`, typed-storage persistent ids;
// also the `torch.jit._pickle.restore_type_tag` wrapper that LibTorch's own torch::pickle_save puts around dicts).
// NumPy arrays inside the pickle are understood too (numpy_pickle.hpp). The pickle machine itself is
// pickle_machine.hpp. Anything else is reported as a ModelError rather than guessed at.
// Ref: ../shared/docs/idiff-face-model.md section 1; Python's pickle protocol 2 (Lib/pickletools.py).
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace adaptdiff::model {

/// A state dict in file order: (key, tensor) pairs. Tensors live on the CPU and own their memory.
using StateDict = std::vector<std::pair<std::string, torch::Tensor>>;

/// Reads a `torch.save`d state dict (zip archive `<stem>/data.pkl` + `<stem>/data/<key>` storages).
///
/// The pickle root must be a `collections.OrderedDict` (its `_metadata` attribute is ignored) or a plain dict
/// mapping str -> tensor. Each tensor is rebuilt from its storage record with the pickled storage offset, size
/// and stride and then copied into its own contiguous CPU buffer (dtype as stored: float32/64, float16,
/// bfloat16, int8/16/32/64, uint8, bool). Keys keep the file order.
///
/// Throws ModelError naming `path` when the file cannot be opened, is not a zip archive, is truncated, uses a
/// pickle opcode or global outside the supported subset, references a missing/too-short storage record, or
/// its root is not a dict of name -> tensor.
StateDict read_state_dict(const std::string& path);

/// Reads a `torch.save`d dict of arrays, such as upstream's identity-context files `{name: float32 [512]}` (a zip
/// archive despite their `.npy` name): keys str or int (int keys become decimal text), values tensors or NumPy
/// arrays (`numpy.ndarray` pickles: float16/32/64, int8-64, uint8, bool in any byte order, C or Fortran order;
/// numpy 1.x and 2.x module names). Keys keep the file (insertion) order. Throws ModelError like read_state_dict.
StateDict read_array_dict(const std::string& path);

}  // namespace adaptdiff::model
