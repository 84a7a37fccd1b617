package chserver

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/ebitengine/purego"
)

// Child serves, then exits the process, when this process was started by
// Start; otherwise it returns at once. Call it first thing in main and in
// TestMain of every binary that starts servers.
func Child() {
	arg, ok := os.LookupEnv(ChildEnv)
	if !ok {
		return
	}
	var o childOptions
	if err := json.Unmarshal([]byte(arg), &o); err != nil {
		fmt.Fprintln(os.Stderr, "chserver child:", err)
		os.Exit(2)
	}
	if err := serve(o); err != nil {
		fmt.Fprintln(os.Stderr, "chserver child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serve runs the engine's command line: it starts the listeners, writes
// the ports file (the parent's signal), then blocks reading the stop fifo.
func serve(o childOptions) error {
	lib, err := purego.Dlopen(o.Lib, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return fmt.Errorf("loading %s: %w", o.Lib, err)
	}
	var cmdline func(int32, **byte) uintptr
	var resultError func(uintptr) *byte
	purego.RegisterLibFunc(&cmdline, lib, "chdb_query_cmdline")
	purego.RegisterLibFunc(&resultError, lib, "chdb_result_error")
	q := fmt.Sprintf("SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP; "+
		"INSERT INTO FUNCTION file('%s', 'TSV', 'tcp UInt16, http UInt16') SELECT getServerPort('tcp_port'), getServerPort('http_port'); "+
		"SELECT * FROM file('%s', 'LineAsString') SETTINGS storage_file_read_method = 'read'",
		filepath.Join(o.Dir, "ports.tsv"), filepath.Join(o.Dir, "stop.fifo"))
	args := []string{"clickhouse",
		"--config-file=" + filepath.Join(o.Dir, "config.xml"),
		"--path=" + filepath.Join(o.Dir, "data"),
		"--listen_host=127.0.0.1",
		fmt.Sprintf("--tcp_port=%d", o.TCPPort),
		fmt.Sprintf("--http_port=%d", o.HTTPPort),
		"--query=" + q}
	argv := make([]*byte, len(args)+1)
	keep := make([][]byte, len(args))
	for i, a := range args {
		keep[i] = append([]byte(a), 0)
		argv[i] = &keep[i][0]
	}
	res := cmdline(int32(len(args)), &argv[0])
	if res == 0 {
		return nil
	}
	if e := resultError(res); e != nil {
		return fmt.Errorf("%s", cString(e))
	}
	return nil
}

func cString(p *byte) string {
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}
