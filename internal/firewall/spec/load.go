package spec

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/moat-sg/moat/internal/firewall"
)

// Load reads the spec file at path ("-" for stdin), a single unnamed
// scenario named after the file ("stdin" for standard input).
func Load(stdin io.Reader, path string) (*File, error) {
	r, name := stdin, "stdin"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read spec: %w", err)
		}
		defer f.Close()
		r, name = f, strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	file, err := Parse(r, name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return file, nil
}

// CompileState is the host state of the scenario of f (read from path)
// named scenario ("" picks the only one), to be compiled as Neutron 21
// would with compat, and the scenario's name.
func (f *File) CompileState(path, scenario string, compat bool) (*firewall.HostState, string, error) {
	sc, err := f.Scenario(scenario)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	st, err := sc.HostState(nil)
	if err != nil {
		return nil, "", fmt.Errorf("scenario %s: %w", sc.Name, err)
	}
	st.Options.NeutronCompat = compat
	return st, sc.Name, nil
}
