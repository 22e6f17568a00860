#include "model/pickle_machine.hpp"

// The values of the pickle machine: names for messages, and breaking the links between them.
namespace adaptdiff::model::pickle {

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kNone: return "None";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kBytes: return "bytes";
    case Kind::kTuple: return "tuple";
    case Kind::kList: return "list";
    case Kind::kDict: return "dict";
    case Kind::kGlobal: return "global";
    case Kind::kStorage: return "storage";
    case Kind::kTensor: return "tensor";
    case Kind::kDtype: return "numpy.dtype";
    case Kind::kNdarray: return "numpy.ndarray";
  }
  return "?";
}

std::string describe(const Value& v) {
  std::string out = kind_name(v.kind);
  if (v.kind == Kind::kString) out += " '" + v.s + "'";
  if (v.kind == Kind::kGlobal) out += " " + v.s;
  return out;
}

void Unpickled::break_links(std::vector<ValuePtr>& values) {
  for (const ValuePtr& v : values) {
    v->items.clear();
    v->dict.clear();
  }
  values.clear();
}

}  // namespace adaptdiff::model::pickle
