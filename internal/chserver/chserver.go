// Package chserver runs a real ClickHouse server — the engine in chdb's
// libchdb.so, with ClickHouse's own native TCP and HTTP listeners — in a
// child process. Tests, `declinemon demo` and `make stack` use it where no
// clickhouse-server package exists.
//
// The child is the calling binary re-executed with an environment variable
// (ChildEnv) that makes Child take over: it loads the library with purego,
// so the process-global engine is never shared with an in-process chdb
// session and a crash of the server cannot take its parent down. Every
// binary that starts servers must call Child first thing (main, TestMain).
//
// Limits of this server, not of ClickHouse: no TLS listener, no
// asynchronous-insert queue (inserts run synchronously), and a rejected
// native handshake (unknown database, wrong password) aborts the server
// process a few seconds later.
package chserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ChildEnv carries the child's options; its presence makes Child serve.
const ChildEnv = "DECLINEMON_CHSERVER_CHILD"

// LibEnv names libchdb.so (the npm package @chdb/lib-linux-x64-gnu).
const LibEnv = "CHDB_LIB_PATH"

// User is an account the server accepts over TCP and HTTP, with full
// rights (access management included).
type User struct {
	Name, Password string
}

// Options configure a server.
type Options struct {
	Lib string // libchdb.so; default $CHDB_LIB_PATH
	// Dir holds the data, the configuration and the control files. Keep
	// it to restart the same server with its data.
	Dir string
	// TCPPort and HTTPPort: 0 picks free ports (and Restart keeps them).
	TCPPort, HTTPPort int
	// Users besides "default" (no password).
	Users []User
	// Command runs the child (it must call Child); default: this
	// executable with no arguments.
	Command []string
	// Log receives the server's own output; default discarded.
	Log io.Writer
}

// Server is a running server.
type Server struct {
	opts Options
	cmd  *exec.Cmd
	done chan error
	// TCPAddr is host:port of the native protocol, HTTPAddr of HTTP.
	TCPAddr, HTTPAddr string
}

type childOptions struct {
	Lib, Dir          string
	TCPPort, HTTPPort int
}

// Start starts a server and returns once both listeners accept.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Lib == "" {
		o.Lib = os.Getenv(LibEnv)
	}
	if o.Lib == "" {
		return nil, fmt.Errorf("chserver: no engine library (set %s to libchdb.so)", LibEnv)
	}
	if _, err := os.Stat(o.Lib); err != nil {
		return nil, fmt.Errorf("chserver: engine library: %w", err)
	}
	if o.Dir == "" {
		return nil, errors.New("chserver: Options.Dir is required")
	}
	var err error
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return nil, fmt.Errorf("chserver: %w", err)
	}
	for _, p := range []*int{&o.TCPPort, &o.HTTPPort} {
		if *p == 0 {
			if *p, err = freePort(); err != nil {
				return nil, err
			}
		}
	}
	if len(o.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("chserver: %w", err)
		}
		o.Command = []string{exe}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	s := &Server{opts: o}
	return s, s.start(ctx)
}

func (s *Server) start(ctx context.Context) error {
	o := s.opts
	if err := os.MkdirAll(filepath.Join(o.Dir, "data"), 0o755); err != nil {
		return fmt.Errorf("chserver: %w", err)
	}
	if err := writeConfig(o.Dir, o.Users); err != nil {
		return err
	}
	fifo := filepath.Join(o.Dir, "stop.fifo")
	os.Remove(fifo)
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		return fmt.Errorf("chserver: stop fifo: %w", err)
	}
	os.Remove(filepath.Join(o.Dir, "ports.tsv"))
	arg, _ := json.Marshal(childOptions{Lib: o.Lib, Dir: o.Dir, TCPPort: o.TCPPort, HTTPPort: o.HTTPPort})
	cmd := exec.Command(o.Command[0], o.Command[1:]...)
	cmd.Env = append(os.Environ(), ChildEnv+"="+string(arg))
	cmd.Stdout, cmd.Stderr = o.Log, o.Log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("chserver: starting the child: %w", err)
	}
	s.cmd, s.done = cmd, make(chan error, 1)
	go func() { s.done <- cmd.Wait() }()
	s.TCPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(o.TCPPort))
	s.HTTPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(o.HTTPPort))
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(filepath.Join(o.Dir, "ports.tsv")); err == nil && dialable(s.TCPAddr) && dialable(s.HTTPAddr) {
			return nil
		}
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("chserver: the server exited while starting: %v", err)
		case <-ctx.Done():
			s.Kill()
			return ctx.Err()
		case <-deadline.C:
			s.Kill()
			return errors.New("chserver: the server did not listen within 60s")
		case <-tick.C:
		}
	}
}

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("chserver: picking a port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Stop shuts the server down cleanly (it finishes what it is doing and
// writes its parts); after timeout it is killed.
func (s *Server) Stop(timeout time.Duration) error {
	if s.cmd == nil {
		return nil
	}
	select {
	case err := <-s.done:
		s.done <- err
		s.cmd = nil
		return nil
	default:
	}
	go func() {
		// Opening the fifo blocks until the server reads it.
		f, err := os.OpenFile(filepath.Join(s.opts.Dir, "stop.fifo"), os.O_WRONLY, 0)
		if err == nil {
			f.WriteString("stop\n")
			f.Close()
		}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
		s.Kill()
	}
	s.cmd = nil
	return nil
}

// Kill ends the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	s.done <- nil
	s.cmd = nil
	// Unblock a Stop writer left waiting on the fifo.
	if f, err := os.OpenFile(filepath.Join(s.opts.Dir, "stop.fifo"), os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
		f.Close()
	}
}

// Restart starts the server again on the same directory and ports.
func (s *Server) Restart(ctx context.Context) error {
	if s.cmd != nil {
		return errors.New("chserver: Restart of a running server")
	}
	return s.start(ctx)
}

// Running reports whether the child is alive.
func (s *Server) Running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case err := <-s.done:
		s.done <- err
		return false
	default:
		return true
	}
}

// Pid is the child's process id (0 when stopped).
func (s *Server) Pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Dir is the server's directory.
func (s *Server) Dir() string { return s.opts.Dir }

func writeConfig(dir string, users []User) error {
	var u bytes.Buffer
	u.WriteString("<clickhouse>\n  <profiles><default/></profiles>\n  <quotas><default/></quotas>\n  <users>\n")
	all := append([]User{{Name: "default"}}, users...)
	for _, x := range all {
		if x.Name == "" || strings.ContainsAny(x.Name+x.Password, "<>&\"'") {
			return fmt.Errorf("chserver: user %q: names and passwords must not need XML escaping", x.Name)
		}
		fmt.Fprintf(&u, "    <%s><password>%s</password><profile>default</profile><quota>default</quota>"+
			"<networks><ip>127.0.0.1</ip><ip>::1</ip></networks><access_management>1</access_management></%s>\n", x.Name, x.Password, x.Name)
	}
	u.WriteString("  </users>\n</clickhouse>\n")
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), u.Bytes(), 0o600); err != nil {
		return fmt.Errorf("chserver: %w", err)
	}
	cfg := fmt.Sprintf("<clickhouse>\n  <user_directories>\n    <users_xml><path>%s</path></users_xml>\n"+
		"    <local_directory><path>%s/</path></local_directory>\n  </user_directories>\n</clickhouse>\n",
		filepath.Join(dir, "users.xml"), filepath.Join(dir, "access"))
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("chserver: %w", err)
	}
	return nil
}

// Query posts sql to the server's HTTP interface (POST: GET is read-only)
// as user (empty: default) with the given output format, and returns the
// response body; a server error is returned with its message.
func (s *Server) Query(ctx context.Context, user User, format, sql string) ([]byte, error) {
	u := "http://" + s.HTTPAddr + "/?default_format=" + format
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(sql))
	if err != nil {
		return nil, err
	}
	if user.Name != "" {
		req.Header.Set("X-ClickHouse-User", user.Name)
		req.Header.Set("X-ClickHouse-Key", user.Password)
	}
	resp, err := queryClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("clickhouse: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

var queryClient = &http.Client{Timeout: time.Minute}
