#pragma once
// `adaptdiff-sample --status OUTPUT.h5`: progress of an existing output file, read serially (no MPI
// collectives), e.g. from a login node or a Slurm epilog.
#include <ostream>
#include <string>

namespace adaptdiff::job {

/// Prints done/total samples, complete identities and a per-identity-range breakdown (at most `ranges`
/// lines) of the output at `path`. Returns ExitCode::kSuccess when every sample is done,
/// ExitCode::kCheckpointed when work remains. Throws IoError if the file is not a readable adaptdiff output.
int print_status(const std::string& path, std::ostream& out, int ranges = 10);

}  // namespace adaptdiff::job
