#pragma once
// Outputs of adaptdiff-eval: metrics.json, the table on stdout, and the histogram (Figure 1) drawn by
// tools/plot_histogram.py with matplotlib.
#include <ostream>
#include <string>

#include "eval/metrics.hpp"

namespace adaptdiff::eval {

/// Facts about the run recorded next to the metrics.
struct RunInfo {
  std::string source;          ///< the embeddings file (or images file) evaluated
  Convention convention = Convention::kPyeer;
  bool all_impostors = true;   ///< false: a sampled subset of impostor pairs
  int64_t total_impostor_pairs = 0;
  uint64_t seed = 0;
  int64_t rows = 0;            ///< embeddings evaluated
  int64_t identities = 0;
};

/// metrics.json text: one object with the keys of Metrics (eer, fmr100, fmr1000, genuine_mean, genuine_std,
/// impostor_mean, impostor_std, fdr, n_genuine, n_impostor; numbers with 17 significant digits, a
/// non-finite value as null) and "convention", "impostor_sampling", "seed", "rows", "identities", "source".
std::string metrics_json(const Metrics& m, const RunInfo& info);

/// Writes metrics_json() to `path`. Throws IoError naming the file when it cannot be written.
void write_text_file(const std::string& path, const std::string& text);

/// The short table printed on stdout.
void print_table(std::ostream& out, const Metrics& m, const RunInfo& info);

/// How to run the histogram script.
struct PlotCommand {
  std::string python;  ///< interpreter
  std::string script;  ///< tools/plot_histogram.py
};

/// The interpreter: $ADAPTDIFF_PYTHON, else the project venv (<source>/build/pyenv/bin/python3) when it exists,
/// else /usr/bin/python3 (whose packages tools/setup.sh installs) when it exists, else python3 on PATH.
/// The script: $ADAPTDIFF_PLOT_SCRIPT, else <source>/tools/plot_histogram.py.
PlotCommand default_plot_command();

/// Runs `python script --scores scores_h5 --metrics metrics_json --out png`. Returns "" on success, else the
/// reason (interpreter missing, matplotlib missing: the script's own message, exit status).
std::string run_plot(const PlotCommand& cmd, const std::string& scores_h5, const std::string& metrics_json,
                     const std::string& png);

}  // namespace adaptdiff::eval
