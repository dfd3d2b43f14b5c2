// Package progress reports the progress of a long task: a bar with rate and
// time left, redrawn in place on a terminal, and a plain line every few
// seconds otherwise (a log file, CI).
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Bar reports progress towards a total.
type Bar struct {
	w        io.Writer
	label    string
	total    int
	tty      bool
	every    time.Duration
	start    time.Time
	mu       sync.Mutex
	done     int
	lastDraw time.Time
	finished bool
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// New starts a bar for total units written to w; tty chooses the in-place
// bar over periodic lines.
func New(w io.Writer, label string, total int, tty bool) *Bar {
	every := 5 * time.Second
	if tty {
		every = 100 * time.Millisecond
	}
	return &Bar{w: w, label: label, total: total, tty: tty, every: every, start: time.Now()}
}

// Set records that done units are complete, and redraws when due.
func (b *Bar) Set(done int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.done = done
	if now := time.Now(); now.Sub(b.lastDraw) >= b.every || done >= b.total {
		b.lastDraw = now
		b.draw()
	}
}

// Finish draws the final state and ends the line.
func (b *Bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	if b.done < b.total || b.tty {
		b.draw()
	}
	if b.tty {
		fmt.Fprintln(b.w)
	}
	b.finished = true
}

func (b *Bar) draw() {
	elapsed := time.Since(b.start)
	rate := float64(b.done) / max(elapsed.Seconds(), 1e-9)
	left := "?"
	if rate > 0 && b.done < b.total {
		left = time.Duration(float64(b.total-b.done) / rate * float64(time.Second)).Round(time.Second).String()
	} else if b.done >= b.total {
		left = "0s"
	}
	pct := 100 * float64(b.done) / float64(max(b.total, 1))
	if b.tty {
		const width = 30
		filled := min(width, int(float64(width)*float64(b.done)/float64(max(b.total, 1))))
		fmt.Fprintf(b.w, "\r%-10s [%s%s] %5.1f%% %d/%d  %.0f/s  %s left ", b.label,
			strings.Repeat("#", filled), strings.Repeat(".", width-filled), pct, b.done, b.total, rate, left)
		return
	}
	fmt.Fprintf(b.w, "%s: %d/%d (%.1f%%), %.0f/s, %s left\n", b.label, b.done, b.total, pct, rate, left)
}
