package executors

import (
	"errors"
	"io"
)

// Pipe runs produce in a goroutine writing what consume reads, as the
// executors move tar streams between a job's files and the stores. When
// both fail, produce's error is the cause (consume read a broken stream);
// when consume stops first, produce's next write fails with errConsumed,
// which is not an error of its own.
func Pipe(produce func(io.Writer) error, consume func(io.Reader) error) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := produce(pw)
		pw.CloseWithError(err)
		done <- err
	}()
	cerr := consume(pr)
	pr.CloseWithError(errConsumed)
	if perr := <-done; perr != nil && !errors.Is(perr, errConsumed) {
		return perr
	}
	return cerr
}

// errConsumed tells Pipe's producer that nobody reads any more.
var errConsumed = errors.New("reader finished")
