package awstest

import (
	"context"
	"time"
)

// PushImageErr is PushImage answering its error, for tests of the
// registry's refusals.
func PushImageErr(f *Fake, repository, tag string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return f.reg.push(ctx, repository, tag)
}
