package frpconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hopproxy/hop/pkg/config"
	"github.com/pelletier/go-toml/v2"
)

var formats = []Format{TOML, YAML, JSON}

// FuzzConvert feeds Convert arbitrary documents: it must not panic, and
// what it accepts must become TOML whose keys are all hop's.
func FuzzConvert(f *testing.F) {
	for _, c := range errorCases {
		f.Add([]byte(c.in), formatIndex(c.f), c.side == Server)
	}
	for _, c := range convertCases {
		f.Add([]byte(c.in), formatIndex(c.f), c.side == Server)
	}
	for side, names := range inputs {
		for _, n := range names {
			data, err := os.ReadFile(filepath.Join("testdata", n))
			if err != nil {
				f.Fatal(err)
			}
			fm, err := FormatOf(n)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data, formatIndex(fm), side == Server)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, fi uint8, server bool) {
		side := Client
		if server {
			side = Server
		}
		fm := formats[int(fi)%len(formats)]
		out, rep, err := Convert(data, fm, side)
		if err != nil {
			if out != nil || rep != nil {
				t.Fatalf("output with error %v", err)
			}
			return
		}
		var doc map[string]any
		if err := toml.Unmarshal(out, &doc); err != nil {
			t.Fatalf("output is not TOML: %v\n%s", err, out)
		}
		checkHopKeys(t, side, doc, "")
	})
}

func formatIndex(f Format) uint8 {
	for i, x := range formats {
		if x == f {
			return uint8(i)
		}
	}
	return 0
}

// checkHopKeys fails for a key of doc (at path prefix) that hop's config
// does not have.
func checkHopKeys(t *testing.T, side Side, doc map[string]any, prefix string) {
	for k, v := range doc {
		p := joinPath(prefix, k)
		kind, ok := config.HopKeyKind(string(side), p)
		if !ok {
			t.Fatalf("output key %s is not hop's", p)
		}
		switch kind {
		case config.KindTable:
			m, isMap := v.(map[string]any)
			if !isMap {
				t.Fatalf("%s: a table in hop, %T in the output", p, v)
			}
			checkHopKeys(t, side, m, p)
		case config.KindTables:
			arr, _ := v.([]any)
			for _, e := range arr {
				if m, isMap := e.(map[string]any); isMap && !strings.Contains(p, "allowPorts") {
					checkHopKeys(t, side, m, p+"[]")
				}
			}
		}
	}
}
