// Package config reads slipway.yml, the configuration of `slipway serve`:
// where it listens and keeps its state, how it reaches GitHub and Slack,
// the contexts its jobs may use, and the apps it deploys with who may
// deploy and approve where.
//
// Values may reference the environment as ${NAME} or ${NAME:-default};
// every problem in a file is reported at once, each at its line and
// column, as a workflows.ErrorList. Secrets read from the file are of
// type Secret, which prints and logs as [redacted]; Config.Secrets lists
// them for the log masker.
package config
