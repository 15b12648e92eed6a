// Package workflows is slipway's config language: CircleCI 2.0 and 2.1
// files parsed with positions, compiled (commands, executors, parameters,
// orbs, matrices) and planned for a trigger into a DAG of jobs. The engine
// that runs plans lives in workflows/engine. It imports no Slack, GitHub,
// AWS, Docker or SQL code.
package workflows
