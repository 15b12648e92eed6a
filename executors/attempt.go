package executors

import (
	"fmt"
	"regexp"
)

// attemptIDs are what executors accept as attempt IDs: they become folder
// and file names (the local executor's attempt folder, workspace layers)
// and label values, so they may hold no path and no separator.
var attemptIDs = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// CheckAttemptID returns an error unless id is safe to use as an attempt
// ID in file names and labels.
func CheckAttemptID(id string) error {
	if !attemptIDs.MatchString(id) {
		return fmt.Errorf("bad attempt id %q", id)
	}
	return nil
}
