package frpconf

import (
	"fmt"
	"os"
)

// ConvertFile reads the frp config at path (its format told by the
// extension) and converts it for side. Errors name the file.
func ConvertFile(path string, side Side) ([]byte, *Report, error) {
	f, err := FormatOf(path)
	if err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the frp config: %w", err)
	}
	out, rep, err := Convert(data, f, side)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, rep, nil
}
