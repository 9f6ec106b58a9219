// SPDX-License-Identifier: Apache-2.0
//
// snapbench: a client of the containerd Snapshots gRPC API (through containerd 1.6's own
// proxy client, as containerd itself talks to a proxy snapshotter), with two modes:
//
//	snapbench bench -sock SOCK [-iters N] [-chains N]
//	    Times each op type (Prepare, Mounts, Commit, Remove, View, Stat, List) on a workload
//	    and prints "op NAME COUNT MEAN_US" lines and "total SECONDS".
//
//	snapbench crash -bin SNAPSHOTTER -root DIR [-kills N] [-seed N] [-min-ms N] [-max-ms N]
//	    Starts SNAPSHOTTER --root DIR --address DIR.sock, runs a create/commit/remove workload
//	    against it, kills it with SIGKILL after a random delay, restarts it on the same root and
//	    checks the store through the API and on disk; N times. Prints ok/FAIL per restart and
//	    "N passed, N failed"; exit status 1 on any failure. Kills only the process it started.
//
// Built in GOPATH mode against Debian's golang-github-containerd-containerd-dev (see run.sh).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/mount"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/containerd/snapshots/proxy"
	"google.golang.org/grpc"
)

func dial(sock string) (*grpc.ClientConn, snapshots.Snapshotter, error) {
	conn, err := grpc.Dial(sock, grpc.WithInsecure(),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "unix", a)
		}))
	if err != nil {
		return nil, nil, err
	}
	return conn, proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), "proxy"), nil
}

func die(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "snapbench: "+format+"\n", a...)
	os.Exit(1)
}

// --- bench -------------------------------------------------------------------------------

type timer struct {
	total map[string]time.Duration
	count map[string]int
	order []string
}

func (t *timer) do(op string, f func() error) {
	t0 := time.Now()
	err := f()
	d := time.Since(t0)
	if err != nil {
		die("%s: %v", op, err)
	}
	if _, ok := t.count[op]; !ok {
		t.order = append(t.order, op)
	}
	t.total[op] += d
	t.count[op]++
}

func bench(args []string) {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	sock := fs.String("sock", "", "snapshotter socket")
	iters := fs.Int("iters", 200, "iterations of the prepare/commit/remove cycle")
	chains := fs.Int("chains", 5, "chains of 20 layers")
	fs.Parse(args)
	conn, sn, err := dial(*sock)
	if err != nil {
		die("dial: %v", err)
	}
	defer conn.Close()
	ctx := context.Background()
	t := &timer{total: map[string]time.Duration{}, count: map[string]int{}}
	lbl := snapshots.WithLabels(map[string]string{"bench/label": "x"})
	start := time.Now()

	// A committed base, so the cycle's snapshots have a parent.
	if _, err := sn.Prepare(ctx, "base-a", ""); err != nil {
		die("prepare base: %v", err)
	}
	if err := sn.Commit(ctx, "base", "base-a"); err != nil {
		die("commit base: %v", err)
	}
	for i := 0; i < *iters; i++ {
		a, c, ch := fmt.Sprintf("a-%d", i), fmt.Sprintf("c-%d", i), fmt.Sprintf("ch-%d", i)
		t.do("prepare", func() error { _, err := sn.Prepare(ctx, a, "base", lbl); return err })
		t.do("mounts", func() error { _, err := sn.Mounts(ctx, a); return err })
		t.do("commit", func() error { return sn.Commit(ctx, c, a, lbl) })
		t.do("prepare", func() error { _, err := sn.Prepare(ctx, ch, c); return err })
		t.do("mounts", func() error { _, err := sn.Mounts(ctx, ch); return err })
		t.do("remove", func() error { return sn.Remove(ctx, ch) })
		t.do("remove", func() error { return sn.Remove(ctx, c) })
	}
	for k := 0; k < *chains; k++ {
		parent := ""
		var names []string
		for l := 0; l < 20; l++ {
			a, c := fmt.Sprintf("k%d-a-%d", k, l), fmt.Sprintf("k%d-l-%d", k, l)
			t.do("chain-prepare", func() error { _, err := sn.Prepare(ctx, a, parent, lbl); return err })
			t.do("chain-commit", func() error { return sn.Commit(ctx, c, a, lbl) })
			parent = c
			names = append(names, c)
		}
		v := fmt.Sprintf("k%d-view", k)
		t.do("view", func() error { _, err := sn.View(ctx, v, parent); return err })
		for _, n := range names {
			t.do("stat", func() error { _, err := sn.Stat(ctx, n); return err })
		}
		for l := 0; l < 5; l++ {
			t.do("list", func() error {
				return sn.Walk(ctx, func(context.Context, snapshots.Info) error { return nil })
			})
		}
		t.do("remove", func() error { return sn.Remove(ctx, v) })
		for l := len(names) - 1; l >= 0; l-- {
			t.do("remove", func() error { return sn.Remove(ctx, names[l]) })
		}
	}
	total := time.Since(start)
	for _, op := range t.order {
		fmt.Printf("op %s %d %.1f\n", op, t.count[op],
			float64(t.total[op].Microseconds())/float64(t.count[op]))
	}
	fmt.Printf("total %.4f\n", total.Seconds())
}

// --- crash -------------------------------------------------------------------------------

type snap struct {
	kind   snapshots.Kind
	parent string
	labels map[string]string
}

// An op the client issued; in flight when the snapshotter died (no answer, or an error).
type op struct {
	what         string // prepare, view, commit, remove
	key, name    string // key; name for commit
	parent       string
	labels       map[string]string
	removedModel *snap // remove: the model entry before the call
}

type crashRun struct {
	bin, root, sock string
	rng             *rand.Rand
	model           map[string]*snap // what the client knows exists, after OK answers
	mu              sync.Mutex
	inflight        *op
	seq             int
	idOwner         map[string]string // snapshot dir id (from the active's mounts) -> key
	notes           []string
}

func labelsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// The dir id of an overlay/bind mount's upper (active) or source (view on nothing).
func mountID(root string, ms []mount.Mount) string {
	prefix := filepath.Join(root, "snapshots") + "/"
	for _, m := range ms {
		cands := []string{m.Source}
		for _, o := range m.Options {
			if strings.HasPrefix(o, "upperdir=") {
				cands = []string{strings.TrimPrefix(o, "upperdir=")}
			}
		}
		for _, c := range cands {
			if strings.HasPrefix(c, prefix) {
				return strings.SplitN(strings.TrimPrefix(c, prefix), "/", 2)[0]
			}
		}
	}
	return ""
}

// Every path a mount refers to must exist.
func mountPathsExist(ms []mount.Mount) error {
	if len(ms) == 0 {
		return fmt.Errorf("no mounts")
	}
	for _, m := range ms {
		var paths []string
		if m.Type == "bind" || m.Source != "overlay" {
			paths = append(paths, m.Source)
		}
		for _, o := range m.Options {
			kv := strings.SplitN(o, "=", 2)
			if len(kv) != 2 {
				continue
			}
			switch kv[0] {
			case "upperdir", "workdir":
				paths = append(paths, kv[1])
			case "lowerdir":
				paths = append(paths, strings.Split(kv[1], ":")...)
			}
		}
		for _, p := range paths {
			if _, err := os.Stat(p); err != nil {
				return fmt.Errorf("mount %s: %v", m.Type, err)
			}
		}
	}
	return nil
}

func (c *crashRun) committedNames() []string {
	var out []string
	for n, s := range c.model {
		if s.kind == snapshots.KindCommitted {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func (c *crashRun) hasChildren(name string) bool {
	for _, s := range c.model {
		if s.parent == name {
			return true
		}
	}
	return false
}

func (c *crashRun) setInflight(o *op) {
	c.mu.Lock()
	c.inflight = o
	c.mu.Unlock()
}

// The workload, until an op fails. Returns the failing op's error.
func (c *crashRun) work(sn snapshots.Snapshotter, rng *rand.Rand) error {
	ctx := context.Background()
	call := func(o *op, f func(ctx context.Context) error) error {
		c.setInflight(o)
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := f(cctx); err != nil {
			return fmt.Errorf("%s %s: %w", o.what, o.key, err)
		}
		c.setInflight(nil)
		return nil
	}
	for {
		c.seq++
		i := c.seq
		committed := c.committedNames()
		parent := ""
		if len(committed) > 0 && rng.Intn(5) != 0 {
			parent = committed[rng.Intn(len(committed))]
		}
		key := fmt.Sprintf("a-%d", i)
		pl := map[string]string{"test/key": key, "test/r": fmt.Sprint(rng.Int63())}
		o := &op{what: "prepare", key: key, parent: parent, labels: pl}
		if err := call(o, func(ctx context.Context) error {
			ms, err := sn.Prepare(ctx, key, parent, snapshots.WithLabels(pl))
			if err == nil {
				c.model[key] = &snap{snapshots.KindActive, parent, pl}
				c.noteID(mountID(c.root, ms), key)
			}
			return err
		}); err != nil {
			return err
		}
		o = &op{what: "mounts", key: key}
		if err := call(o, func(ctx context.Context) error {
			ms, err := sn.Mounts(ctx, key)
			if err == nil {
				err = mountPathsExist(ms)
			}
			return err
		}); err != nil {
			return err
		}
		if rng.Intn(4) != 0 {
			name := fmt.Sprintf("c-%d", i)
			cl := map[string]string{"test/name": name, "test/parent": parent}
			o = &op{what: "commit", key: key, name: name, parent: parent, labels: cl}
			if err := call(o, func(ctx context.Context) error {
				err := sn.Commit(ctx, name, key, snapshots.WithLabels(cl))
				if err == nil {
					delete(c.model, key)
					c.model[name] = &snap{snapshots.KindCommitted, parent, cl}
				}
				return err
			}); err != nil {
				return err
			}
		} else {
			o = &op{what: "remove", key: key, removedModel: c.model[key]}
			if err := call(o, func(ctx context.Context) error {
				err := sn.Remove(ctx, key)
				if err == nil {
					delete(c.model, key)
				}
				return err
			}); err != nil {
				return err
			}
		}
		if committed = c.committedNames(); len(committed) > 0 && rng.Intn(8) == 0 {
			v := fmt.Sprintf("v-%d", i)
			vp := committed[rng.Intn(len(committed))]
			vl := map[string]string{"test/view": v}
			o = &op{what: "view", key: v, parent: vp, labels: vl}
			if err := call(o, func(ctx context.Context) error {
				_, err := sn.View(ctx, v, vp, snapshots.WithLabels(vl))
				if err == nil {
					c.model[v] = &snap{snapshots.KindView, vp, vl}
				}
				return err
			}); err != nil {
				return err
			}
		}
		// Remove leaves (views, stray actives, committed) while the tree is big, else now and then.
		for n := 0; n < 3; n++ {
			if len(c.model) <= 25 && rng.Intn(3) != 0 {
				break
			}
			var leaves []string
			for name := range c.model {
				if !c.hasChildren(name) {
					leaves = append(leaves, name)
				}
			}
			if len(leaves) == 0 {
				break
			}
			sort.Strings(leaves)
			victim := leaves[rng.Intn(len(leaves))]
			o = &op{what: "remove", key: victim, removedModel: c.model[victim]}
			if err := call(o, func(ctx context.Context) error {
				err := sn.Remove(ctx, victim)
				if err == nil {
					delete(c.model, victim)
				}
				return err
			}); err != nil {
				return err
			}
		}
	}
}

func (c *crashRun) noteID(id, key string) {
	if id == "" {
		return
	}
	if prev, ok := c.idOwner[id]; ok && prev != key {
		c.notes = append(c.notes, fmt.Sprintf("snapshot dir id %s reused: first %s, now %s", id, prev, key))
	}
	c.idOwner[id] = key
}

func (c *crashRun) start(log *os.File) (*exec.Cmd, error) {
	cmd := exec.Command(c.bin, "--root", c.root, "--address", c.sock)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if conn, err := net.Dial("unix", c.sock); err == nil {
			conn.Close()
			return cmd, nil
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("the snapshotter does not answer on %s", c.sock)
		}
		if cmd.ProcessState != nil {
			return nil, fmt.Errorf("the snapshotter exited")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Checks the restarted store against the model and o (in flight at the kill, may be nil),
// then makes the model match the store. Returns the problems found.
func (c *crashRun) check(sn snapshots.Snapshotter, o *op) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var bad []string
	listed := map[string]snapshots.Info{}
	if err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if _, dup := listed[info.Name]; dup {
			bad = append(bad, fmt.Sprintf("List shows %s twice", info.Name))
		}
		listed[info.Name] = info
		return nil
	}); err != nil {
		return []string{fmt.Sprintf("List: %v", err)}
	}
	// Names the in-flight op may have changed either way.
	touched := map[string]bool{}
	if o != nil {
		touched[o.key] = true
		if o.name != "" {
			touched[o.name] = true
		}
	}
	same := func(name string, want *snap, got snapshots.Info) {
		if got.Kind != want.kind || got.Parent != want.parent || !labelsEqual(got.Labels, want.labels) {
			bad = append(bad, fmt.Sprintf("%s is %v parent %q labels %v, want %v parent %q labels %v",
				name, got.Kind, got.Parent, got.Labels, want.kind, want.parent, want.labels))
		}
	}
	for name, want := range c.model {
		got, ok := listed[name]
		if touched[name] {
			continue
		}
		if !ok {
			bad = append(bad, fmt.Sprintf("%s (%v, acknowledged) is gone", name, want.kind))
			continue
		}
		same(name, want, got)
	}
	for name, got := range listed {
		if _, ok := c.model[name]; ok || touched[name] {
			continue
		}
		bad = append(bad, fmt.Sprintf("unknown snapshot %s (%v) the client never created", name, got.Kind))
	}
	if o != nil {
		kgot, kok := listed[o.key]
		switch o.what {
		case "prepare", "view":
			if kok {
				k := snapshots.KindActive
				if o.what == "view" {
					k = snapshots.KindView
				}
				same(o.key, &snap{k, o.parent, o.labels}, kgot)
			}
		case "commit":
			ngot, nok := listed[o.name]
			if kok && nok {
				bad = append(bad, fmt.Sprintf("commit %s -> %s in flight: both exist", o.key, o.name))
			} else if !kok && !nok {
				bad = append(bad, fmt.Sprintf("commit %s -> %s in flight: neither exists", o.key, o.name))
			} else if kok {
				same(o.key, c.model[o.key], kgot)
			} else {
				same(o.name, &snap{snapshots.KindCommitted, o.parent, o.labels}, ngot)
			}
		case "remove":
			if kok && o.removedModel != nil {
				same(o.key, o.removedModel, kgot)
			}
		default: // mounts: changes nothing
			if want, ok := c.model[o.key]; ok {
				if !kok {
					bad = append(bad, fmt.Sprintf("%s is gone", o.key))
				} else {
					same(o.key, want, kgot)
				}
			}
		}
	}
	// Every active or view snapshot is complete: Mounts works and its dirs exist.
	for name, info := range listed {
		if info.Kind == snapshots.KindCommitted {
			continue
		}
		ms, err := sn.Mounts(ctx, name)
		if err == nil {
			err = mountPathsExist(ms)
		}
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s (%v) is incomplete: %v", name, info.Kind, err))
		}
		if info.Parent != "" {
			if _, ok := listed[info.Parent]; !ok {
				bad = append(bad, fmt.Sprintf("%s: parent %s is not listed", name, info.Parent))
			}
		}
	}
	// On disk: exactly one dir per listed snapshot, each with a readable info.json, fs and work.
	dir := filepath.Join(c.root, "snapshots")
	ents, err := os.ReadDir(dir)
	if err != nil {
		bad = append(bad, fmt.Sprintf("read %s: %v", dir, err))
	}
	ondisk := map[string]string{}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(filepath.Join(p, "info.json"))
		if err != nil {
			bad = append(bad, fmt.Sprintf("orphan entry %s: %v", p, err))
			continue
		}
		var ij struct{ Name string }
		if err := json.Unmarshal(data, &ij); err != nil {
			bad = append(bad, fmt.Sprintf("%s/info.json: %v", p, err))
			continue
		}
		if _, ok := listed[ij.Name]; !ok {
			bad = append(bad, fmt.Sprintf("orphan dir %s (%s) not in List", p, ij.Name))
		}
		if prev, ok := ondisk[ij.Name]; ok {
			bad = append(bad, fmt.Sprintf("%s is in both %s and %s", ij.Name, prev, e.Name()))
		}
		ondisk[ij.Name] = e.Name()
		for _, sub := range []string{"fs", "work"} {
			if st, err := os.Stat(filepath.Join(p, sub)); err != nil || !st.IsDir() {
				bad = append(bad, fmt.Sprintf("%s has no %s dir", p, sub))
			}
		}
	}
	for name := range listed {
		if _, ok := ondisk[name]; !ok {
			bad = append(bad, fmt.Sprintf("%s is listed but has no dir", name))
		}
	}
	// The model follows the store from here on.
	c.model = map[string]*snap{}
	for name, info := range listed {
		c.model[name] = &snap{info.Kind, info.Parent, info.Labels}
	}
	return bad
}

func crash(args []string) {
	fs := flag.NewFlagSet("crash", flag.ExitOnError)
	bin := fs.String("bin", "", "snapshotter executable")
	root := fs.String("root", "", "state directory")
	kills := fs.Int("kills", 30, "kill -9 and restart this many times")
	seed := fs.Int64("seed", time.Now().UnixNano(), "random seed")
	minMs := fs.Int("min-ms", 20, "shortest run before a kill")
	maxMs := fs.Int("max-ms", 300, "longest run before a kill")
	fs.Parse(args)
	if *bin == "" || *root == "" {
		die("crash: -bin and -root are needed")
	}
	fmt.Printf("seed %d\n", *seed)
	c := &crashRun{bin: *bin, root: *root, sock: *root + ".sock", rng: rand.New(rand.NewSource(*seed)),
		model: map[string]*snap{}, idOwner: map[string]string{}}
	logf, err := os.Create(*root + ".log")
	if err != nil {
		die("%v", err)
	}
	defer logf.Close()
	passed, failed := 0, 0
	var o *op
	for round := 0; round <= *kills; round++ {
		cmd, err := c.start(logf)
		if err != nil {
			fmt.Printf("FAIL restart %d: %v\n", round, err)
			failed++
			break
		}
		conn, sn, err := dial(c.sock)
		if err != nil {
			die("dial: %v", err)
		}
		if round > 0 {
			what := "nothing"
			if o != nil {
				what = o.what + " " + o.key
			}
			if bad := c.check(sn, o); len(bad) > 0 {
				failed++
				fmt.Printf("FAIL restart %d (in flight: %s):\n  %s\n", round, what, strings.Join(bad, "\n  "))
			} else {
				passed++
				fmt.Printf("ok restart %d (in flight: %s, %d snapshots)\n", round, what, len(c.model))
			}
		}
		if round == *kills {
			// The last start: stop it cleanly, as a service manager would.
			conn.Close()
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
				fmt.Printf("FAIL: the snapshotter did not exit on SIGTERM\n")
				failed++
			}
			break
		}
		var werr error
		wdone := make(chan struct{})
		wrng := rand.New(rand.NewSource(c.rng.Int63()))
		go func() {
			werr = c.work(sn, wrng)
			close(wdone)
		}()
		delay := time.Duration(*minMs+c.rng.Intn(*maxMs-*minMs+1)) * time.Millisecond
		select {
		case <-time.After(delay):
		case <-wdone:
		}
		early := false
		select {
		case <-wdone:
			early = true // the workload failed while the snapshotter was alive
		default:
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		<-wdone
		conn.Close()
		c.mu.Lock()
		o = c.inflight
		c.inflight = nil
		c.mu.Unlock()
		if early {
			failed++
			fmt.Printf("FAIL run %d: %v (before the kill)\n", round, werr)
		}
	}
	for _, n := range c.notes {
		fmt.Printf("note: %s\n", n)
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) < 2 {
		die("usage: snapbench bench|crash [flags]")
	}
	switch os.Args[1] {
	case "bench":
		bench(os.Args[2:])
	case "crash":
		crash(os.Args[2:])
	default:
		die("unknown mode %q", os.Args[1])
	}
}
