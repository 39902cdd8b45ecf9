/** Exit codes of the sessionbridge command, documented in its --help. */
export const ExitCode = {
  OK: 0,
  /** The command ran and failed: bridge unreachable, session not found, start-up failure. */
  FAILURE: 1,
  /** The command line, configuration or contracts are invalid. */
  INVALID: 2,
} as const;
