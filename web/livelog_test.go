package web

import (
	"bufio"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Viewers of a running attempt's log, coming at different times, share
// one reading of it, and each sees what it would have seen alone: the
// whole log, rendered as a single conversion of it renders it. Colours
// run across lines and chunks, characters are cut between writes.
func TestLiveLogViewersShareOneReading(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeStore{st: bigPipeline(1), logPath: path}
	h := newFakeHandler(t, fs)
	h.poll = 5 * time.Millisecond
	srv := httptest.NewServer(h)
	defer srv.Close()

	var mu sync.Mutex
	var whole []byte
	write := func(s string) {
		mu.Lock()
		whole = append(whole, s...)
		mu.Unlock()
		if _, err := f.WriteString(s); err != nil {
			t.Error(err)
		}
	}
	line := func(i int) {
		switch i % 7 {
		case 0:
			write("\x1b[31m") // red until a reset three lines on
		case 3:
			write("\x1b[0m")
		}
		write(fmt.Sprintf("%04d <step> & output ", i))
		if i%5 == 0 {
			write("\xc3") // an é cut in two
			time.Sleep(time.Millisecond)
			write("\xa9")
		}
		write("\x1b[1")
		time.Sleep(time.Millisecond) // a sequence cut in two
		write("mbold\x1b[22m\n")
	}

	const viewers = 5
	logs := make([]strings.Builder, viewers)
	var wg sync.WaitGroup
	watch := func(v int) {
		req, _ := http.NewRequest("GET", srv.URL+"/pipelines/big/jobs/j000/log?attempt=a", nil)
		req.SetBasicAuth("rita", password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		wg.Go(func() {
			defer resp.Body.Close()
			for ev := range readEvents(bufio.NewReader(resp.Body)) {
				if ev.event == "end" {
					return
				}
				if ev.event == "" {
					logs[v].WriteString(ev.data)
				}
			}
			t.Errorf("viewer %d: the stream stopped before its end", v)
		})
	}
	shared := false
	for i := range 300 {
		if i%40 == 0 && i/40 < viewers {
			watch(i / 40)
		}
		line(i)
		if i == 250 {
			h.lives.mu.Lock()
			l := h.lives.m["a"]
			shared = len(h.lives.m) == 1 && l != nil && l.viewers == viewers
			h.lives.mu.Unlock()
		}
		time.Sleep(500 * time.Microsecond)
	}
	f.Close()
	fs.ended.Store(true)
	wg.Wait()
	if !shared {
		t.Error("the viewers did not share one live log")
	}
	h.lives.mu.Lock()
	if len(h.lives.m) != 0 {
		t.Errorf("%d live logs left once every viewer left", len(h.lives.m))
	}
	h.lives.mu.Unlock()
	want := runs(string(newANSI().convert(nil, whole, true)))
	for v := range logs {
		if got := runs(logs[v].String()); got != want {
			t.Errorf("viewer %d saw the log otherwise than it renders:\n got %.300q\nwant %.300q", v, got, want)
		}
	}
}

var spanTag = regexp.MustCompile(`<span class="([^"]*)">|</span>`)

// runs is HTML from ansiHTML as text with each character's classes,
// whatever the chunks' spans: "[f1]abc[]def".
func runs(s string) string {
	var b strings.Builder
	class, last := "", "-"
	for s != "" {
		loc := spanTag.FindStringSubmatchIndex(s)
		text := s
		if loc != nil {
			text = s[:loc[0]]
		}
		if text != "" {
			if class != last {
				fmt.Fprintf(&b, "[%s]", class)
				last = class
			}
			b.WriteString(html.UnescapeString(text))
		}
		if loc == nil {
			break
		}
		if loc[2] >= 0 {
			class = s[loc[2]:loc[3]]
		} else {
			class = ""
		}
		s = s[loc[1]:]
	}
	return b.String()
}

// A liveLog keeps at most liveKeep bytes of events, and always the
// newest; what a viewer took of them does not change under it.
func TestLiveLogKeepsTheNewest(t *testing.T) {
	l := &liveLog{next: make(chan struct{})}
	chunk := make([]byte, liveKeep/4)
	var held []liveEvent
	starts := func(evs []liveEvent) (s []int64) {
		for _, e := range evs {
			s = append(s, e.start)
		}
		return s
	}
	for i := range 10 {
		l.add(liveEvent{start: int64(i) * 10, end: int64(i+1) * 10, data: chunk})
		if i == 2 {
			held = l.events // a viewer's view, read without the lock
		}
	}
	if got := starts(l.events); l.kept != liveKeep || !slices.Equal(got, []int64{60, 70, 80, 90}) || l.end != 100 {
		t.Errorf("kept %d bytes, events from %v, up to %d", l.kept, got, l.end)
	}
	if got := starts(held); !slices.Equal(got, []int64{0, 10, 20}) {
		t.Errorf("a viewer's events changed under it: from %v", got)
	}
	l.add(liveEvent{start: 100, end: 110, data: make([]byte, 2*liveKeep)})
	if got := starts(l.events); !slices.Equal(got, []int64{100}) {
		t.Errorf("after an event larger than liveKeep: events from %v", got)
	}
}
