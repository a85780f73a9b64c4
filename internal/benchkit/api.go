package benchkit

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync/atomic"
	"time"

	"github.com/seed-d22a899f/librato/internal/fakelibrato"
)

// APIFlag makes the benchmark binary the fake API's process (ServeAPI).
const APIFlag = "benchkit-api"

// APIs are the fake API's endpoints, served by a process of their own.
type APIs struct {
	// Fast answers at once, Slow after the throughput run's latency;
	// both are legacy endpoints and take gzip.
	Fast, Slow string
	// Control resets the fakes (POST /reset) and counts the gauges they
	// stored since (GET /gauges).
	Control string
	cmd     *exec.Cmd
	stdin   io.Closer
}

// StartAPI runs the fake API in a child process (the running binary with
// -APIFlag) answering Slow after latency.
func StartAPI(latency time.Duration, log io.Writer) (*APIs, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-"+APIFlag, latency.String())
	cmd.Stderr = log
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	a := &APIs{cmd: cmd, stdin: stdin}
	if _, err := fmt.Fscan(bufio.NewReader(stdout), &a.Fast, &a.Slow, &a.Control); err != nil {
		a.Close()
		return nil, fmt.Errorf("fake API process: %w", err)
	}
	return a, nil
}

// Close ends the fake API's process: it exits when its stdin closes.
func (a *APIs) Close() {
	a.stdin.Close()
	_ = a.cmd.Wait() //nolint:errcheck // the process's exit status tells nothing the runs did not
}

// ServeAPI is the fake API's process: it serves two fakes (the second
// answering after latency, a time.Duration string) and the control
// endpoint, prints their URLs and runs until stdin closes.
func ServeAPI(latency string) error {
	d, err := time.ParseDuration(latency)
	if err != nil {
		return err
	}
	var gauges atomic.Int64
	count := func(e fakelibrato.Event) { gauges.Add(int64(len(e.Gauges))) }
	opts := fakelibrato.Options{User: User, Token: Token, AllowGzip: true, Observe: count}
	fast := fakelibrato.New(opts)
	opts.Latency = d
	slow := fakelibrato.New(opts)

	defer fast.Close()
	defer slow.Close()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /reset", func(http.ResponseWriter, *http.Request) {
		// The fakes keep what they stored: resetting between chunks keeps
		// their memory small.
		fast.Reset()
		slow.Reset()
		gauges.Store(0)
	})
	mux.HandleFunc("GET /gauges", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, gauges.Load())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with the process
	fmt.Printf("%s %s http://%s\n", fast.LegacyURL(), slow.LegacyURL(), ln.Addr())
	// The parent closes stdin when it is done (or dies).
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}
