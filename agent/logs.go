package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// LogOptions select what of a container's log is shown, as the kubelet
// reads them from corev1.PodLogOptions.
type LogOptions struct {
	// Since: records older are skipped (zero: none).
	Since time.Time
	// TailLines: only the last so many records (negative: all).
	TailLines int64
	// LimitBytes: the output stops after so many bytes (0: no limit).
	LimitBytes int64
	// Timestamps prefixes each record with its RFC3339Nano time.
	Timestamps bool
	// Follow keeps reading as the file grows (and when it is rotated)
	// until the container stops or the context ends.
	Follow bool
	// Stream is "Stdout" or "Stderr" for one stream only; "" or "All" for
	// both.
	Stream string
}

// followPoll is how often a followed log is checked for new bytes. Polling
// keeps this small and portable; 100ms is below what a person notices.
const followPoll = 100 * time.Millisecond

var errLogLimit = errors.New("log limit reached")

// ReadCRILog writes the container log at path, in the CRI format
// ("<RFC3339Nano time> <stdout|stderr> <P|F> <text>" a line, P marking a
// line the next record continues), to w as kubectl logs shows it: the
// text alone, records of one line joined. When following, running says
// whether the container still runs: once it does not, the rest of the file
// is written and the read ends. If w has a Flush method it is called
// whenever the file has no more to give, so a follower sees each line as it
// comes.
func ReadCRILog(ctx context.Context, path string, o LogOptions, w io.Writer, running func() bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer func() { f.Close() }()
	if o.TailLines >= 0 {
		start, err := tailStart(f, o.TailLines)
		if err != nil {
			return fmt.Errorf("read log %s: %w", path, err)
		}
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			return fmt.Errorf("read log %s: %w", path, err)
		}
	}
	out := &logWriter{w: w, left: o.LimitBytes, opts: o}
	flush := func() {
		if fl, ok := w.(interface{ Flush() }); ok {
			fl.Flush()
		}
	}
	r := bufio.NewReaderSize(f, 32<<10)
	var pending []byte
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			line = append(pending, line[:len(line)-1]...)
			pending = pending[:0]
			if werr := out.record(line); werr != nil {
				if errors.Is(werr, errLogLimit) {
					flush()
					return nil
				}
				return werr
			}
			continue
		}
		// A line without its newline yet: the runtime is writing it.
		pending = append(pending, line...)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read log %s: %w", path, err)
		}
		flush()
		if !o.Follow {
			return nil
		}
		if running != nil && !running() {
			// Stopped: what it wrote before is in the file by now. One
			// more pass writes it, then the next EOF ends the read.
			o.Follow = false
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(followPoll):
		}
		if nf, ok := rotated(f, path); ok {
			// The old file was read to its end just now; a log rotated
			// away goes on in the new file, from its start.
			f.Close()
			f, pending = nf, pending[:0]
			r.Reset(f)
		}
	}
}

// rotated opens the file now at path if it is not the one f reads.
func rotated(f *os.File, path string) (*os.File, bool) {
	cur, err := f.Stat()
	if err != nil {
		return nil, false
	}
	now, err := os.Stat(path)
	if err != nil || os.SameFile(cur, now) {
		return nil, false
	}
	nf, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	return nf, true
}

// tailStart is the offset where the last n lines of f begin.
func tailStart(f *os.File, n int64) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	if n == 0 {
		return size, nil
	}
	const block = 4096
	buf := make([]byte, block)
	pos := size
	seen := int64(0)
	// A last line with its newline ends at size: that newline is not a
	// boundary before a line.
	first := true
	for pos > 0 {
		l := int64(block)
		if pos < l {
			l = pos
		}
		pos -= l
		if _, err := f.ReadAt(buf[:l], pos); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		chunk := buf[:l]
		for i := len(chunk) - 1; i >= 0; i-- {
			if chunk[i] != '\n' {
				continue
			}
			if first && pos+int64(i) == size-1 {
				continue
			}
			seen++
			if seen == n {
				return pos + int64(i) + 1, nil
			}
		}
		first = false
	}
	return 0, nil
}

// logWriter turns CRI records into kubectl's output, within the limits.
type logWriter struct {
	w    io.Writer
	opts LogOptions
	left int64 // bytes still allowed when LimitBytes > 0
}

// record writes one CRI log line (without its newline). Malformed lines
// are skipped, as the kubelet skips them.
func (lw *logWriter) record(line []byte) error {
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return nil
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return nil
	}
	tag, text, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		// An empty line may end at its tag.
		tag, text = rest, nil
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return nil
	}
	switch s := string(stream); {
	case s != "stdout" && s != "stderr":
		return nil
	case lw.opts.Stream == "Stdout" && s != "stdout", lw.opts.Stream == "Stderr" && s != "stderr":
		return nil
	}
	if !lw.opts.Since.IsZero() && t.Before(lw.opts.Since) {
		return nil
	}
	// Tags may carry more than P/F after a colon; the first says it.
	partial := len(tag) > 0 && tag[0] == 'P'
	var b []byte
	if lw.opts.Timestamps {
		b = append(t.AppendFormat(nil, time.RFC3339Nano), ' ')
	}
	b = append(b, text...)
	if !partial {
		b = append(b, '\n')
	}
	return lw.write(b)
}

func (lw *logWriter) write(b []byte) error {
	if lw.opts.LimitBytes <= 0 {
		_, err := lw.w.Write(b)
		return err
	}
	if int64(len(b)) >= lw.left {
		if _, err := lw.w.Write(b[:lw.left]); err != nil {
			return err
		}
		lw.left = 0
		return errLogLimit
	}
	lw.left -= int64(len(b))
	_, err := lw.w.Write(b)
	return err
}
