package metastore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Dataset is reference data that has been parsed and validated, ready to be
// written. Every record remembers where it came from, for error messages.
type Dataset struct {
	FraudIPs  []Record[FraudIP]
	Locations []Record[LocationDoc]
	Products  []Record[Product]
}

// Record is a parsed document and the file and line it was read from.
type Record[T any] struct {
	Value T
	File  string
	Line  int
}

// LocationDoc is a location with the extra fields of its document, which are
// stored as they came.
type LocationDoc struct {
	Location
	Extra bson.D
}

// Len is the number of records in the dataset.
func (d *Dataset) Len() int { return len(d.FraudIPs) + len(d.Locations) + len(d.Products) }

// LineError is a problem in one line of a metadata file.
type LineError struct {
	File    string
	Line    int
	Problem string
}

func (e *LineError) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Problem
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Problem)
}

// ParseFiles reads and validates metadata files. A file may be a JSON array, JSON
// lines, or mongoexport output (extended JSON, as lines or with --jsonArray);
// each document's shape says which collection it belongs to. Nothing is
// written: the first problem is returned, naming the file and line.
func ParseFiles(paths ...string) (Dataset, error) {
	var ds Dataset
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return Dataset{}, fmt.Errorf("open metadata file: %w", err)
		}
		err = ds.parse(path, f)
		f.Close()
		if err != nil {
			return Dataset{}, err
		}
	}
	if err := ds.checkDuplicates(); err != nil {
		return Dataset{}, err
	}
	return ds, nil
}

// Parse reads one metadata document stream; name is used in errors.
func Parse(name string, r io.Reader) (Dataset, error) {
	var ds Dataset
	if err := ds.parse(name, r); err != nil {
		return Dataset{}, err
	}
	if err := ds.checkDuplicates(); err != nil {
		return Dataset{}, err
	}
	return ds, nil
}

func (ds *Dataset) parse(name string, r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	n := 0
	add := func(line int, raw []byte) error {
		n++
		if err := ds.addDocument(name, line, raw); err != nil {
			return err
		}
		return nil
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		err = eachArrayElement(data, add)
	} else {
		err = eachLine(data, add)
	}
	if err != nil {
		var le *LineError
		if errors.As(err, &le) {
			le.File = name
			return le
		}
		return &LineError{File: name, Problem: err.Error()}
	}
	if n == 0 {
		return &LineError{File: name, Problem: "no documents in the file"}
	}
	return nil
}

// eachLine calls fn for every non-blank line of a JSON-lines file.
func eachLine(data []byte, fn func(line int, raw []byte) error) error {
	for i, raw := range bytes.Split(data, []byte("\n")) {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			continue
		}
		if err := fn(i+1, raw); err != nil {
			return err
		}
	}
	return nil
}

// eachArrayElement calls fn for every element of a JSON array, with the line
// the element starts on.
func eachArrayElement(data []byte, fn func(line int, raw []byte) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:off], []byte("\n")) }
	if _, err := dec.Token(); err != nil {
		return &LineError{Line: 1, Problem: "invalid JSON: " + err.Error()}
	}
	for dec.More() {
		start := dec.InputOffset()
		for start < int64(len(data)) && strings.IndexByte(" \t\r\n,", data[start]) >= 0 {
			start++
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return &LineError{Line: lineAt(start), Problem: "invalid JSON: " + err.Error()}
		}
		if err := fn(lineAt(start), raw); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return &LineError{Line: lineAt(dec.InputOffset()), Problem: "invalid JSON: " + err.Error()}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &LineError{Line: lineAt(dec.InputOffset()), Problem: "data after the closing ]"}
	}
	return nil
}

func (ds *Dataset) addDocument(file string, line int, raw []byte) error {
	fail := func(format string, args ...any) error {
		return &LineError{File: file, Line: line, Problem: fmt.Sprintf(format, args...)}
	}
	if bytes.HasPrefix(raw, []byte("{'")) {
		return fail("single-quoted keys: this looks like a Python dict, not JSON; write the file with json.dump or mongoexport")
	}
	if !json.Valid(raw) {
		var v any
		err := json.Unmarshal(raw, &v)
		return fail("invalid JSON: %v", err)
	}
	var doc bson.D
	if err := bson.UnmarshalExtJSON(raw, false, &doc); err != nil {
		return fail("not a JSON object: %v", err)
	}
	fields := make(map[string]any, len(doc))
	for _, e := range doc {
		if _, dup := fields[e.Key]; dup {
			return fail("duplicate field %q", e.Key)
		}
		fields[e.Key] = e.Value
	}
	switch {
	case has(fields, "ip_address"):
		if err := onlyFields(fields, "_id", "ip_address"); err != nil {
			return fail("fraud_ip document: %v", err)
		}
		ip, err := stringField(fields, "ip_address")
		if err == nil {
			ip, err = CanonicalIP(ip)
		}
		if err != nil {
			return fail("fraud_ip document: %v", err)
		}
		ds.FraudIPs = append(ds.FraudIPs, Record[FraudIP]{FraudIP{IPAddress: ip}, file, line})
	case has(fields, "location_id"):
		var loc LocationDoc
		var err error
		if loc.LocationID, err = intField(fields, "location_id"); err != nil {
			return fail("location_details document: %v", err)
		}
		if loc.Name, err = stringField(fields, "name"); err != nil {
			return fail("location_details document: %v", err)
		}
		if err := loc.Validate(); err != nil {
			return fail("location_details document: %v", err)
		}
		for _, e := range doc {
			if e.Key != "_id" && e.Key != "location_id" && e.Key != "name" {
				loc.Extra = append(loc.Extra, e)
			}
		}
		ds.Locations = append(ds.Locations, Record[LocationDoc]{loc, file, line})
	case has(fields, "product_id"):
		if err := onlyFields(fields, "_id", "product_id", "product_name", "route_id", "category"); err != nil {
			return fail("product_details document: %v", err)
		}
		var p Product
		var err error
		var route int64
		if p.ProductID, err = intField(fields, "product_id"); err == nil {
			if p.ProductName, err = stringField(fields, "product_name"); err == nil {
				if route, err = intField(fields, "route_id"); err == nil {
					p.Category, err = stringField(fields, "category")
				}
			}
		}
		if err == nil && (route <= 0 || route > math.MaxInt32) {
			err = fmt.Errorf("route_id %d is out of range", route)
		}
		p.RouteID = int(route)
		if err == nil {
			err = p.Validate()
		}
		if err != nil {
			return fail("product_details document: %v", err)
		}
		ds.Products = append(ds.Products, Record[Product]{p, file, line})
	default:
		return fail("not a fraud_ip, location_details or product_details document: it has no ip_address, location_id or product_id field")
	}
	return nil
}

// fieldMap indexes a document's fields by name; with duplicate keys the last
// one wins.
func fieldMap(doc bson.D) map[string]any {
	m := make(map[string]any, len(doc))
	for _, e := range doc {
		m[e.Key] = e.Value
	}
	return m
}

func has(fields map[string]any, key string) bool { _, ok := fields[key]; return ok }

func onlyFields(fields map[string]any, allowed ...string) error {
	for k := range fields {
		found := false
		for _, a := range allowed {
			found = found || k == a
		}
		if !found {
			return fmt.Errorf("unknown field %q", k)
		}
	}
	return nil
}

func stringField(fields map[string]any, key string) (string, error) {
	v, ok := fields[key]
	if !ok {
		return "", fmt.Errorf("missing field %q", key)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s must be a string, got %s", key, typeName(v))
	}
	return s, nil
}

// intField accepts the integer types extended JSON produces, and doubles with
// an integral value (mongoexport of numbers written by Python or JavaScript).
func intField(fields map[string]any, key string) (int64, error) {
	v, ok := fields[key]
	if !ok {
		return 0, fmt.Errorf("missing field %q", key)
	}
	switch n := v.(type) {
	case int32:
		return int64(n), nil
	case int64:
		return n, nil
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			return int64(n), nil
		}
		return 0, fmt.Errorf("%s must be an integer, got %v", key, n)
	default:
		return 0, fmt.Errorf("%s must be an integer, got %s", key, typeName(v))
	}
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bson.D, bson.M:
		return "an object"
	case bson.A:
		return "an array"
	case bool:
		return "a boolean"
	case int32, int64, float64:
		return "a number"
	default:
		return reflect.TypeOf(v).String()
	}
}

// checkDuplicates rejects a key defined twice with different values; the
// same record repeated is harmless.
func (ds *Dataset) checkDuplicates() error {
	if err := dedupe(&ds.FraudIPs, func(f FraudIP) string { return f.IPAddress }, "ip_address"); err != nil {
		return err
	}
	if err := dedupe(&ds.Locations, func(l LocationDoc) string { return fmt.Sprint(l.LocationID) }, "location_id"); err != nil {
		return err
	}
	return dedupe(&ds.Products, func(p Product) string { return fmt.Sprint(p.ProductID) }, "product_id")
}

func dedupe[T any](recs *[]Record[T], key func(T) string, keyName string) error {
	seen := make(map[string]Record[T], len(*recs))
	out := (*recs)[:0]
	for _, r := range *recs {
		k := key(r.Value)
		if prev, ok := seen[k]; ok {
			if !reflect.DeepEqual(prev.Value, r.Value) {
				return &LineError{File: r.File, Line: r.Line, Problem: fmt.Sprintf(
					"%s %s is defined differently at %s:%d", keyName, k, prev.File, prev.Line)}
			}
			continue
		}
		seen[k] = r
		out = append(out, r)
	}
	*recs = out
	return nil
}
