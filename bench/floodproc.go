package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync/atomic"
	"time"
)

// The flooding tenant runs in a process of its own at a lower CPU
// priority. In production a flood comes from other machines; run in the
// bench's own process, on the same two CPUs, its client work (TLS, encoding,
// goroutines) would slow the quiet tenant's client, which is not what the
// fairness figures are about: how the server shares itself out. The
// server and PostgreSQL still do all the work the flood asks of them.

// floodEnv names the environment variable that turns the bench binary into
// a flood process; its value is a floodOrder in JSON.
const floodEnv = "PGKUBE_BENCH_FLOOD"

// floodOrder is what a flood process is told to do.
type floodOrder struct {
	URL       string      `json:"url"`
	Creds     credentials `json:"-"`
	CA        []byte      `json:"ca"`
	Cert      []byte      `json:"cert"`
	Key       []byte      `json:"key"`
	Workers   int         `json:"workers"`
	Objects   int         `json:"objects"`
	DataBytes int         `json:"dataBytes"`
	SeqStart  int64       `json:"seqStart"`
}

// floodReport is what it answers when told to stop.
type floodReport struct {
	OK, Throttled, Errs int
	FirstErr            string
	Wall                time.Duration
	Seq                 int64
}

// runFloodProcess is main for a flood process: it floods until its stdin
// closes, then prints its floodReport.
func runFloodProcess(order string) {
	var o floodOrder
	if err := json.Unmarshal([]byte(order), &o); err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		os.Exit(2)
	}
	creds := credentials{caPEM: o.CA, certPEM: o.Cert, keyPEM: o.Key}
	tr, err := creds.transport(o.Workers)
	if err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		os.Exit(2)
	}
	cs, err := clientsetFor(o.URL, tr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		os.Exit(2)
	}
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin) //nolint:errcheck // ends when the parent closes it
		close(stop)
	}()
	var seq atomic.Int64
	seq.Store(o.SeqStart)
	fs := flood(context.Background(), cs, o.Workers, o.Objects, o.DataBytes, &seq, stop)
	rep := floodReport{OK: fs.ok, Throttled: fs.throttled, Errs: fs.errs, Wall: fs.wall, Seq: seq.Load()}
	if fs.firstErr != nil {
		rep.FirstErr = fs.firstErr.Error()
	}
	json.NewEncoder(os.Stdout).Encode(rep) //nolint:errcheck
}

// floodProcess is a running flood process.
type floodProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *jsonBuffer
}

type jsonBuffer struct{ b []byte }

func (j *jsonBuffer) Write(p []byte) (int, error) { j.b = append(j.b, p...); return len(p), nil }

// startFlood starts a flood process at nice 10.
func startFlood(o floodOrder) (*floodProcess, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	o.CA, o.Cert, o.Key = o.Creds.caPEM, o.Creds.certPEM, o.Creds.keyPEM
	order, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	// nice applies to every thread of the process it starts; setpriority
	// on a running Go process would reach only one of its threads.
	cmd := exec.Command("nice", "-n", "10", self)
	cmd.Env = append(os.Environ(), floodEnv+"="+string(order))
	cmd.Stderr = os.Stderr
	p := &floodProcess{cmd: cmd, out: &jsonBuffer{}}
	cmd.Stdout = p.out
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the flood process: %w", err)
	}
	return p, nil
}

// stop ends the flood and returns its counts and where its sequence ended.
func (p *floodProcess) stop() (floodStats, int64, error) {
	p.stdin.Close()
	if err := p.cmd.Wait(); err != nil {
		return floodStats{}, 0, fmt.Errorf("flood process: %w", err)
	}
	var rep floodReport
	if err := json.Unmarshal(p.out.b, &rep); err != nil {
		return floodStats{}, 0, fmt.Errorf("flood process report %q: %w", p.out.b, err)
	}
	fs := floodStats{ok: rep.OK, throttled: rep.Throttled, errs: rep.Errs, wall: rep.Wall}
	if rep.FirstErr != "" {
		fs.firstErr = errors.New(rep.FirstErr)
	}
	return fs, rep.Seq, nil
}
