#pragma once
// Strict, typed reading of TOML tables (the only user of toml++ in adaptdiff).
//
// Every get_*() marks the key as known; finish() then rejects any key that no getter asked for, so
// typos fail loudly. Errors are ConfigError and quote the file, the dotted key and its line:column.
#include <toml++/toml.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace adaptdiff::config {

/// Reader over one TOML table (a whole document or a [section]).
class TableReader {
 public:
  /// table: lent, must outlive the reader; file: shown in messages; prefix: dotted path of the table ("" at root).
  TableReader(const toml::table& table, std::string file, std::string prefix);

  bool has(const std::string& key) const;
  /// Every key of this table, in the file's order of the TOML library (sorted).
  std::vector<std::string> keys() const;

  /// Sub-table `key` (a [section]); an absent section reads as an empty table. Call finish() on the
  /// returned reader too. Throws ConfigError when `key` exists but is not a table.
  TableReader section(const std::string& key);

  std::optional<std::string> get_string(const std::string& key);
  std::optional<int64_t> get_int(const std::string& key);
  /// Accepts integers and floats.
  std::optional<double> get_double(const std::string& key);
  std::optional<bool> get_bool(const std::string& key);
  std::optional<std::vector<int64_t>> get_int_array(const std::string& key);
  std::optional<std::vector<bool>> get_bool_array(const std::string& key);

  std::string require_string(const std::string& key);
  int64_t require_int(const std::string& key);
  double require_double(const std::string& key);
  bool require_bool(const std::string& key);
  std::vector<int64_t> require_int_array(const std::string& key);
  std::vector<bool> require_bool_array(const std::string& key);

  /// Throws ConfigError naming every key of this table that no getter or section() asked for.
  void finish() const;

  /// "file: key 'a.b' (line L:C)" for messages about a value that parsed but is out of range.
  std::string where(const std::string& key) const;
  const std::string& file() const { return file_; }
  std::string dotted(const std::string& key) const;

 private:
  const toml::node* node(const std::string& key);
  [[noreturn]] void type_error(const std::string& key, const std::string& expected) const;

  const toml::table* table_;
  std::string file_;
  std::string prefix_;
  std::set<std::string> used_;
};

/// Parses a TOML file; throws ConfigError with the file, line and column of a syntax error.
toml::table parse_toml_file(const std::string& path);
/// Parses TOML text (used for --set overrides); `origin` names it in messages.
toml::table parse_toml_text(const std::string& text, const std::string& origin);

}  // namespace adaptdiff::config
