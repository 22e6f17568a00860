#include "eval/report.hpp"

#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/error.hpp"

#ifndef ADAPTDIFF_SOURCE_DIR
#define ADAPTDIFF_SOURCE_DIR "."
#endif

namespace adaptdiff::eval {

namespace {

std::string number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
      continue;
    }
    out += c;
  }
  return out + "\"";
}

// Single-quotes `s` for /bin/sh.
std::string shell_quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

bool file_exists(const std::string& path) { return std::ifstream(path).good(); }

}  // namespace

std::string metrics_json(const Metrics& m, const RunInfo& info) {
  std::ostringstream o;
  o << "{\n"
    << "  \"eer\": " << number(m.eer) << ",\n"
    << "  \"fmr100\": " << number(m.fmr100) << ",\n"
    << "  \"fmr1000\": " << number(m.fmr1000) << ",\n"
    << "  \"genuine_mean\": " << number(m.genuine_mean) << ",\n"
    << "  \"genuine_std\": " << number(m.genuine_std) << ",\n"
    << "  \"impostor_mean\": " << number(m.impostor_mean) << ",\n"
    << "  \"impostor_std\": " << number(m.impostor_std) << ",\n"
    << "  \"fdr\": " << number(m.fdr) << ",\n"
    << "  \"n_genuine\": " << m.n_genuine << ",\n"
    << "  \"n_impostor\": " << m.n_impostor << ",\n"
    << "  \"convention\": " << quoted(convention_name(info.convention)) << ",\n"
    << "  \"impostor_sampling\": " << quoted(info.all_impostors ? "all" : "random") << ",\n"
    << "  \"total_impostor_pairs\": " << info.total_impostor_pairs << ",\n"
    << "  \"seed\": " << info.seed << ",\n"
    << "  \"rows\": " << info.rows << ",\n"
    << "  \"identities\": " << info.identities << ",\n"
    << "  \"source\": " << quoted(info.source) << "\n"
    << "}\n";
  return o.str();
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) throw IoError("eval: cannot write '" + path + "'");
}

void print_table(std::ostream& out, const Metrics& m, const RunInfo& info) {
  char buf[160];
  auto row = [&](const char* name, double v, const char* unit) {
    std::snprintf(buf, sizeof buf, "  %-14s %12.6f %s\n", name, v, unit);
    out << buf;
  };
  out << "identity separability of " << info.source << " (" << info.rows << " embeddings, " << info.identities
      << " identities; convention " << convention_name(info.convention) << ")\n";
  row("EER", 100 * m.eer, "%");
  row("FMR100", 100 * m.fmr100, "% FNMR at FMR 1%");
  row("FMR1000", 100 * m.fmr1000, "% FNMR at FMR 0.1%");
  row("genuine", m.genuine_mean, "mean");
  row("", m.genuine_std, "std");
  row("impostor", m.impostor_mean, "mean");
  row("", m.impostor_std, "std");
  row("FDR", m.fdr, "");
  out << "  pairs          " << m.n_genuine << " genuine, " << m.n_impostor << " impostor"
      << (info.all_impostors ? " (all)" : " (random subset, seed " + std::to_string(info.seed) + ")") << "\n";
}

PlotCommand default_plot_command() {
  PlotCommand cmd;
  const char* python = std::getenv("ADAPTDIFF_PYTHON");
  const std::string venv = std::string(ADAPTDIFF_SOURCE_DIR) + "/build/pyenv/bin/python3";
  cmd.python = python != nullptr && *python != '\0'  ? python
               : file_exists(venv)                   ? venv
               : file_exists("/usr/bin/python3")     ? "/usr/bin/python3"  // the one Debian's python3-* serve
                                                     : "python3";
  const char* script = std::getenv("ADAPTDIFF_PLOT_SCRIPT");
  cmd.script = script != nullptr && *script != '\0' ? script : std::string(ADAPTDIFF_SOURCE_DIR) + "/tools/plot_histogram.py";
  return cmd;
}

std::string run_plot(const PlotCommand& cmd, const std::string& scores_h5, const std::string& metrics_json,
                     const std::string& png) {
  if (!file_exists(cmd.script)) return "the plot script '" + cmd.script + "' does not exist";
  const std::string line = shell_quoted(cmd.python) + " " + shell_quoted(cmd.script) + " --scores " +
                           shell_quoted(scores_h5) + " --metrics " + shell_quoted(metrics_json) + " --out " +
                           shell_quoted(png);
  const int status = std::system(line.c_str());
  if (status == -1) return "cannot start a shell to run '" + cmd.python + "'";
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    return "python interpreter '" + cmd.python + "' not found (set ADAPTDIFF_PYTHON or run tools/pyenv.sh)";
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 3) {
    return "matplotlib (or numpy/h5py) is not available to '" + cmd.python +
           "' (install python3-matplotlib python3-h5py, or run tools/pyenv.sh)";
  }
  return "'" + line + "' failed with status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : status);
}

}  // namespace adaptdiff::eval
