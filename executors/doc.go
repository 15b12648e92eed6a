// Package executors holds what every executor needs beyond running
// commands: CircleCI cache key templates, the cache store, the workflow
// workspace, per-attempt artifacts and test results, and the shell,
// environment, attempt ID and job log rules (LineWriter) that must not
// differ between the local and docker executors.
//
// Everything that moves files works on tar streams, so that the docker
// executor can feed a container's archive in and out without touching
// the host's file system, and the local executor can produce the same
// streams from host folders with WriteTar and Untar.
package executors
