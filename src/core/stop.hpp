#pragma once
// Graceful stop on SIGTERM / SIGUSR1 (Slurm's --signal, preemption, scancel): the first signal sets a flag
// that the sampling loop polls between diffusion steps; the ranks then agree, checkpoint and exit with
// ExitCode::kCheckpointed. A second signal (more than 2 s after the first: launchers may forward one
// request twice), or `deadline_s` seconds after the first, ends the process at once with the same code (the output stays resumable: every sample's record is written after its data).
//
// Process-wide by nature (a signal handler can only reach global state); install once, from main.
namespace adaptdiff::stop {

/// Installs the handlers for SIGTERM and SIGUSR1 (call first thing in main, so a signal during start-up
/// is a stop request too) and starts the deadline watchdog thread.
void install_handlers();

/// Seconds after the first signal before the process exits at once; <= 0 disables the deadline.
/// May be called after install_handlers() (e.g. once the configuration is read). Default 20 s.
void set_deadline(double deadline_s);

/// True once SIGTERM or SIGUSR1 arrived (async-signal-safe flag; cheap to poll).
bool requested();

/// The signal number that requested the stop (0 if none).
int signal_number();

/// For tests: request a stop as if a signal had arrived.
void request_for_testing();

}  // namespace adaptdiff::stop
