package models

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// MaxSpecSize bounds a JSON spec. It is twice MaxRecordSize because JSON
// is wordier than the wire encoding.
const MaxSpecSize = 2 * 1024 * 1024

// specField is the Field reported for problems that belong to the spec as
// a whole (empty, too large, malformed JSON at the top level).
const specField = "spec"

// DecodeDesiredLRP decodes and validates a DesiredLRP JSON spec (snake_case
// field names as in the .proto; camelCase is accepted too). Every error is
// ValidationErrors naming the offending field.
func DecodeDesiredLRP(data []byte) (*DesiredLRP, error) {
	m := &DesiredLRP{}
	if err := decodeSpec(data, m); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeDesiredLRPUpdate decodes and validates a DesiredLRPUpdate JSON spec.
func DecodeDesiredLRPUpdate(data []byte) (*DesiredLRPUpdate, error) {
	m := &DesiredLRPUpdate{}
	if err := decodeSpec(data, m); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeDesireTaskRequest decodes and validates a task spec:
// {"task_guid": ..., "domain": ..., "task_definition": {...}}.
func DecodeDesireTaskRequest(data []byte) (*DesireTaskRequest, error) {
	m := &DesireTaskRequest{}
	if err := decodeSpec(data, m); err != nil {
		return nil, err
	}
	return m, nil
}

// MarshalJSON encodes m as compact JSON with snake_case field names, the
// form the Decode functions read. The output is the same for equal
// messages: fields in field-number order, map keys sorted, no whitespace.
func MarshalJSON(m proto.Message) ([]byte, error) {
	return compactProtoJSON(m)
}

type validatable interface {
	proto.Message
	Validate() error
}

// decodeSpec unmarshals data into m and validates it.
func decodeSpec(data []byte, m validatable) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return ValidationErrors{{Field: specField, Reason: "must not be empty"}}
	}
	if len(data) > MaxSpecSize {
		return ValidationErrors{{Field: specField, Reason: fmt.Sprintf("must be at most %d bytes, got %d", MaxSpecSize, len(data))}}
	}
	// protojson refuses unknown fields, wrong types and trailing data by
	// default.
	if err := protojson.Unmarshal(data, m); err != nil {
		return ValidationErrors{decodeError(data, m.ProtoReflect().Descriptor(), err)}
	}
	return m.Validate()
}

// protojsonError picks apart protojson's error text: "proto: " (the space
// is sometimes a no-break space, on purpose), an optional "syntax error ",
// the position, and the message. protojson gives no structured errors, so
// this is the only way to name the field; if the format changes, the
// error still comes through, reported against "spec".
var protojsonError = regexp.MustCompile(`^proto:[\s\x{00a0}]*(syntax error )?\(line (\d+):(\d+)\): (.*)$`)

// invalidValue matches protojson's wrong-type message, to drop the
// camelCase field name it carries (Field already names the field).
var invalidValue = regexp.MustCompile(`^invalid value for (\S+) field \S+: (.*)$`)

// oneofSet matches protojson's message for a second member of a oneof
// (two action kinds in one action).
var oneofSet = regexp.MustCompile(`^error parsing \S+, oneof \S+ is already set$`)

// decodeError turns a protojson error into a ValidationError on the field
// at the error's position.
func decodeError(data []byte, md protoreflect.MessageDescriptor, err error) ValidationError {
	msg := err.Error()
	sub := protojsonError.FindStringSubmatch(msg)
	if sub == nil {
		msg = strings.TrimLeft(strings.TrimPrefix(msg, "proto:"), " \u00a0")
		return ValidationError{Field: specField, Reason: msg}
	}
	syntax, reason := sub[1] != "", sub[4]
	line, _ := strconv.Atoi(sub[2])
	col, _ := strconv.Atoi(sub[3])
	path, reached := "", false
	if off, ok := byteOffset(data, line, col); ok {
		path, reached = jsonPathAt(data, md, off)
	}
	switch m := invalidValue.FindStringSubmatch(reason); {
	case m != nil:
		reason = fmt.Sprintf("invalid value for %s: %s", m[1], m[2])
	case oneofSet.MatchString(reason):
		reason = "must not be set together with another field of the same oneof"
	case syntax && reached && path != "":
		// protojson calls a well-formed value of the wrong kind (a string
		// where an object belongs) a syntax error; it is a type error.
		reason = "wrong JSON type: " + reason
	case syntax:
		reason = fmt.Sprintf("syntax error at line %d:%d: %s", line, col, reason)
	}
	if path == "" {
		path = specField
	}
	return ValidationError{Field: path, Reason: reason}
}

// byteOffset converts protojson's 1-based line and column (column counted
// in runes, each invalid byte counting as one) to a byte offset.
func byteOffset(data []byte, line, col int) (int, bool) {
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			return 0, false
		}
		off += i + 1
	}
	for c := 1; c < col; c++ {
		if off >= len(data) {
			return 0, false
		}
		_, size := utf8.DecodeRune(data[off:])
		off += size
	}
	return off, true
}

// jsonFrame is one open JSON object or array while walking a spec.
type jsonFrame struct {
	path  string
	array bool
	index int
	// md is the message an object decodes into; nil for maps and for
	// free-form JSON (google.protobuf.Value and friends).
	md protoreflect.MessageDescriptor
	// mapOf is set when the object is a map field; its keys are map keys.
	mapOf protoreflect.FieldDescriptor
	// list is the repeated field an array holds.
	list protoreflect.FieldDescriptor
	// key is the object key whose value comes next, when haveKey.
	key     string
	haveKey bool
}

// jsonPathAt returns the field path (as Validate spells it) of the JSON
// token starting at byte offset off: for an object key, the field it
// names; for a value, the field it is the value of; "" at the top level.
// reached is false when the JSON is malformed before off; path is then the
// innermost object or array open at the point of the error.
func jsonPathAt(data []byte, md protoreflect.MessageDescriptor, off int) (path string, reached bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []*jsonFrame
	for {
		start := tokenStart(data, int(dec.InputOffset()))
		tok, err := dec.Token()
		if err != nil {
			return currentPath(stack), false
		}
		var top *jsonFrame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		delim, isDelim := tok.(json.Delim)
		closing := isDelim && (delim == '}' || delim == ']')
		if top != nil && !top.array && !top.haveKey && !closing {
			// An object key.
			top.key, _ = tok.(string)
			top.haveKey = true
			if start >= off {
				return childPath(top), true
			}
			continue
		}
		if start >= off {
			switch {
			case closing:
				return currentPath(stack), true
			case top == nil:
				return "", true
			default:
				return childPath(top), true
			}
		}
		switch {
		case isDelim && !closing:
			child := &jsonFrame{array: delim == '['}
			if top == nil {
				child.md = md
			} else {
				child.path = childPath(top)
				describeChild(top, child)
			}
			stack = append(stack, child)
		case closing:
			stack = stack[:len(stack)-1]
			if len(stack) > 0 {
				advance(stack[len(stack)-1])
			}
		case top != nil:
			advance(top)
		}
	}
}

// tokenStart skips the whitespace and separators that encoding/json
// consumes before the next token.
func tokenStart(data []byte, off int) int {
	for off < len(data) {
		switch data[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
		default:
			return off
		}
	}
	return off
}

// advance moves a frame past one complete value.
func advance(f *jsonFrame) {
	if f.array {
		f.index++
	} else {
		f.key, f.haveKey = "", false
	}
}

// childPath names the value about to be read in frame f.
func childPath(f *jsonFrame) string {
	switch {
	case f.array:
		return elem(f.path, f.index)
	case f.mapOf != nil:
		return entry(f.path, f.key)
	case f.md != nil:
		name := f.key
		if fd := lookupField(f.md, f.key); fd != nil {
			name = string(fd.Name()) // report snake_case even for camelCase input
		}
		return field(f.path, name)
	default:
		return f.path // inside free-form JSON, the enclosing field is enough
	}
}

// currentPath names the innermost open object or array.
func currentPath(stack []*jsonFrame) string {
	if len(stack) == 0 {
		return ""
	}
	return stack[len(stack)-1].path
}

// describeChild fills in what the object or array child, opened as the
// next value of parent, decodes into.
func describeChild(parent, child *jsonFrame) {
	var fd protoreflect.FieldDescriptor
	switch {
	case parent.array:
		fd = parent.list
		if fd != nil && fd.Kind() == protoreflect.MessageKind && !isFreeForm(fd.Message()) {
			child.md = fd.Message()
		}
		return
	case parent.mapOf != nil:
		if v := parent.mapOf.MapValue(); v.Kind() == protoreflect.MessageKind && !isFreeForm(v.Message()) {
			child.md = v.Message()
		}
		return
	case parent.md != nil:
		fd = lookupField(parent.md, parent.key)
	}
	if fd == nil {
		return
	}
	switch {
	case fd.IsMap():
		if !child.array {
			child.mapOf = fd
		}
	case fd.IsList():
		if child.array {
			child.list = fd
		}
	case fd.Kind() == protoreflect.MessageKind && !isFreeForm(fd.Message()):
		child.md = fd.Message()
	}
}

// isFreeForm reports the well-known types that hold arbitrary JSON.
func isFreeForm(md protoreflect.MessageDescriptor) bool {
	return md.FullName().Parent() == "google.protobuf"
}

// lookupField finds a field by its proto or JSON name, as protojson does.
func lookupField(md protoreflect.MessageDescriptor, name string) protoreflect.FieldDescriptor {
	if fd := md.Fields().ByName(protoreflect.Name(name)); fd != nil {
		return fd
	}
	return md.Fields().ByJSONName(name)
}
