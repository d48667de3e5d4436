// interop.go checks a timecredits ledger's signed checkpoint, Merkle root and proofs with Go's
// golang.org/x/mod/sumdb/note and sumdb/tlog: independent implementations of the C2SP
// signed-note format and of RFC 6962 trees. crates/audit/tests/go_interop.rs writes the case as
// JSON on standard input; the program prints what it checked and exits 0, or names the first
// check that failed and exits 1.
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type inclusion struct {
	Index int64    `json:"index"`
	Size  int64    `json:"size"`
	Root  string   `json:"root"`
	Proof []string `json:"proof"`
}

type consistency struct {
	Old     int64    `json:"old"`
	OldRoot string   `json:"old_root"`
	New     int64    `json:"new"`
	NewRoot string   `json:"new_root"`
	Proof   []string `json:"proof"`
}

type input struct {
	// Each key must open the note on its own (a checkpoint signed during a key rotation's
	// overlap carries two signatures).
	Vkeys       []string      `json:"vkeys"`
	Note        string        `json:"note"`
	Entries     []string      `json:"entries"`
	Inclusion   []inclusion   `json:"inclusion"`
	Consistency []consistency `json:"consistency"`
}

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func hash(b64 string) tlog.Hash {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != tlog.HashSize {
		fail("%q is not a base64 hash", b64)
	}
	var h tlog.Hash
	copy(h[:], raw)
	return h
}

func hashes(list []string) []tlog.Hash {
	out := make([]tlog.Hash, len(list))
	for i, h := range list {
		out[i] = hash(h)
	}
	return out
}

// memory is a tlog.HashReader over stored hashes held in memory.
type memory []tlog.Hash

func (m memory) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = m[x]
	}
	return out, nil
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fail("reading the case: %v", err)
	}

	var text string
	for _, vkey := range in.Vkeys {
		verifier, err := note.NewVerifier(vkey)
		if err != nil {
			fail("verifier key %s: %v", vkey, err)
		}
		opened, err := note.Open([]byte(in.Note), note.VerifierList(verifier))
		if err != nil {
			fail("note.Open with %s: %v", vkey, err)
		}
		text = opened.Text
	}
	lines := strings.Split(text, "\n")
	if len(lines) < 4 {
		fail("the checkpoint has %d lines", len(lines))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size %q: %v", lines[1], err)
	}
	root := hash(lines[2])

	// The root, recomputed from the entries' exact bytes.
	var stored memory
	for i, b64 := range in.Entries {
		entry, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			fail("entry %d is not base64", i)
		}
		more, err := tlog.StoredHashes(int64(i), entry, stored)
		if err != nil {
			fail("hashing entry %d: %v", i, err)
		}
		stored = append(stored, more...)
	}
	if int64(len(in.Entries)) != size {
		fail("%d entries for a checkpoint of size %d", len(in.Entries), size)
	}
	computed, err := tlog.TreeHash(size, stored)
	if err != nil {
		fail("tree hash: %v", err)
	}
	if computed != root {
		fail("the entries hash to %s, the checkpoint signed %s", computed, root)
	}

	for _, c := range in.Inclusion {
		entry, _ := base64.StdEncoding.DecodeString(in.Entries[c.Index])
		leaf := tlog.RecordHash(entry)
		if err := tlog.CheckRecord(hashes(c.Proof), c.Size, hash(c.Root), c.Index, leaf); err != nil {
			fail("inclusion of entry %d in the tree of size %d: %v", c.Index, c.Size, err)
		}
	}
	for _, c := range in.Consistency {
		if err := tlog.CheckTree(hashes(c.Proof), c.New, hash(c.NewRoot), c.Old, hash(c.OldRoot)); err != nil {
			fail("consistency of size %d with size %d: %v", c.Old, c.New, err)
		}
	}
	fmt.Printf("OK: note opened with %d key(s), root of %d entries, %d inclusion and %d consistency proofs\n",
		len(in.Vkeys), size, len(in.Inclusion), len(in.Consistency))
}
