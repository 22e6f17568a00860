#include "config/toml_reader.hpp"

#include <fstream>
#include <sstream>

#include "core/error.hpp"

namespace adaptdiff::config {

namespace {
std::string position(const toml::node* n) {
  if (n == nullptr) return "";
  const auto& src = n->source();
  if (src.begin.line == 0) return " (from --set)";  // values inserted by a command-line override
  std::ostringstream os;
  os << " (line " << src.begin.line << ":" << src.begin.column << ")";
  return os.str();
}
}  // namespace

TableReader::TableReader(const toml::table& table, std::string file, std::string prefix)
    : table_(&table), file_(std::move(file)), prefix_(std::move(prefix)) {}

std::string TableReader::dotted(const std::string& key) const {
  return prefix_.empty() ? key : prefix_ + "." + key;
}

std::string TableReader::where(const std::string& key) const {
  return file_ + ": key '" + dotted(key) + "'" + position(table_->get(key));
}

bool TableReader::has(const std::string& key) const { return table_->contains(key); }

std::vector<std::string> TableReader::keys() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : *table_) out.emplace_back(k.str());
  return out;
}

const toml::node* TableReader::node(const std::string& key) {
  used_.insert(key);
  return table_->get(key);
}

void TableReader::type_error(const std::string& key, const std::string& expected) const {
  std::ostringstream os;
  os << "config: " << where(key) << " must be " << expected << ", found " << table_->get(key)->type();
  throw ConfigError(os.str());
}

TableReader TableReader::section(const std::string& key) {
  static const toml::table kEmpty;
  const toml::node* n = node(key);
  if (n == nullptr) return TableReader(kEmpty, file_, dotted(key));
  if (!n->is_table()) type_error(key, "a table");
  return TableReader(*n->as_table(), file_, dotted(key));
}

std::optional<std::string> TableReader::get_string(const std::string& key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  if (!n->is_string()) type_error(key, "a string");
  return n->as_string()->get();
}

std::optional<int64_t> TableReader::get_int(const std::string& key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  if (!n->is_integer()) type_error(key, "an integer");
  return n->as_integer()->get();
}

std::optional<double> TableReader::get_double(const std::string& key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  if (n->is_integer()) return static_cast<double>(n->as_integer()->get());
  if (!n->is_floating_point()) type_error(key, "a number");
  return n->as_floating_point()->get();
}

std::optional<bool> TableReader::get_bool(const std::string& key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  if (!n->is_boolean()) type_error(key, "a boolean (true/false)");
  return n->as_boolean()->get();
}

std::optional<std::vector<int64_t>> TableReader::get_int_array(const std::string& key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  if (!n->is_array()) type_error(key, "an array of integers");
  std::vector<int64_t> out;
  for (const auto& e : *n->as_array()) {
    if (!e.is_integer()) type_error(key, "an array of integers");
    out.push_back(e.as_integer()->get());
  }
  return out;
}

std::optional<std::vector<bool>> TableReader::get_bool_array(const std::string& key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  if (!n->is_array()) type_error(key, "an array of booleans");
  std::vector<bool> out;
  for (const auto& e : *n->as_array()) {
    if (!e.is_boolean()) type_error(key, "an array of booleans");
    out.push_back(e.as_boolean()->get());
  }
  return out;
}

namespace {
template <typename T>
T required(std::optional<T> v, const TableReader& r, const std::string& key) {
  if (!v) throw ConfigError("config: " + r.file() + ": required key '" + r.dotted(key) + "' is missing");
  return std::move(*v);
}
}  // namespace

std::string TableReader::require_string(const std::string& k) { return required(get_string(k), *this, k); }
int64_t TableReader::require_int(const std::string& k) { return required(get_int(k), *this, k); }
double TableReader::require_double(const std::string& k) { return required(get_double(k), *this, k); }
bool TableReader::require_bool(const std::string& k) { return required(get_bool(k), *this, k); }
std::vector<int64_t> TableReader::require_int_array(const std::string& k) {
  return required(get_int_array(k), *this, k);
}
std::vector<bool> TableReader::require_bool_array(const std::string& k) {
  return required(get_bool_array(k), *this, k);
}

void TableReader::finish() const {
  std::ostringstream os;
  int unknown = 0;
  for (const auto& [k, v] : *table_) {
    const std::string key(k.str());
    if (used_.count(key) == 0) {
      os << (unknown++ ? ", " : "") << "'" << dotted(key) << "'" << position(&v);
    }
  }
  if (unknown > 0) {
    throw ConfigError("config: " + file_ + ": unknown key" + (unknown > 1 ? "s " : " ") + os.str() +
                      "\n---> HINT: check the spelling against configs/quickstart.toml and README.md");
  }
}

namespace {

// TOML allows non-ASCII characters only inside strings and comments. Refuse any other before toml++ sees it:
// toml++ 3.x's is_non_ascii_horizontal_whitespace() reaches TOML_UNREACHABLE (undefined behaviour) for many
// code points in [U+00A1, U+FEFF] right after a value ("T = 1000\u0183"); found by fuzz/fuzz_run_config.
void check_non_ascii_placement(const std::string& text, const std::string& origin) {
  enum class In { kCode, kComment, kBasic, kLiteral, kMultiBasic, kMultiLiteral } in = In::kCode;
  size_t line = 1, column = 1;
  const size_t start = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;  // UTF-8 byte order mark
  for (size_t i = start; i < text.size(); ++i, ++column) {
    const char c = text[i];
    const bool three = i + 2 < text.size() && text[i + 1] == c && text[i + 2] == c;
    switch (in) {
      case In::kCode:
        if (static_cast<unsigned char>(c) >= 0x80) {
          throw ConfigError("config: cannot parse " + origin + " (line " + std::to_string(line) + ":" +
                            std::to_string(column) + "): a non-ASCII character outside a string or comment");
        }
        if (c == '#') in = In::kComment;
        if (c == '"') in = three ? In::kMultiBasic : In::kBasic;
        if (c == '\'') in = three ? In::kMultiLiteral : In::kLiteral;
        if (three && (c == '"' || c == '\'')) i += 2;
        break;
      case In::kComment:
        if (c == '\n') in = In::kCode;
        break;
      case In::kBasic:
      case In::kMultiBasic:
        if (c == '\\') {
          ++i;  // the escaped character (a '\n' after a line-ending backslash is counted below)
          if (i < text.size() && text[i] == '\n') ++line, column = 0;
        } else if (c == '"' && (in == In::kBasic || three)) {
          if (in == In::kMultiBasic) i += 2;
          in = In::kCode;
        } else if (c == '\n' && in == In::kBasic) {
          in = In::kCode;  // unterminated: toml++ reports it
        }
        break;
      case In::kLiteral:
      case In::kMultiLiteral:
        if (c == '\'' && (in == In::kLiteral || three)) {
          if (in == In::kMultiLiteral) i += 2;
          in = In::kCode;
        } else if (c == '\n' && in == In::kLiteral) {
          in = In::kCode;
        }
        break;
    }
    if (c == '\n') ++line, column = 0;
  }
}

}  // namespace

toml::table parse_toml_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError("config: cannot open " + path);
  std::ostringstream text;
  text << in.rdbuf();
  const std::string s = text.str();
  check_non_ascii_placement(s, path);
  try {
    return toml::parse(s, path);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << "config: cannot parse " << path << " (line " << e.source().begin.line << ":" << e.source().begin.column
       << "): " << e.description();
    throw ConfigError(os.str());
  }
}

toml::table parse_toml_text(const std::string& text, const std::string& origin) {
  check_non_ascii_placement(text, origin);
  try {
    return toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    throw ConfigError("config: cannot parse " + origin + ": " + std::string(e.description()));
  }
}

}  // namespace adaptdiff::config
