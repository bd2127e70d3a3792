package events

import (
	"reflect"
	"strings"
	"testing"
)

// omitzeroFields lists the fields, in typ and every type inside it, whose
// json tag has omitzero.
func omitzeroFields(typ reflect.Type) []string {
	var found []string
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Array || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] {
			return
		}
		seen[typ] = true
		for i := range typ.NumField() {
			f := typ.Field(i)
			if strings.Contains(f.Tag.Get("json"), "omitzero") {
				found = append(found, path+"."+f.Name)
			}
			walk(f.Type, path+"."+f.Name)
		}
	}
	walk(typ, typ.Name())
	return found
}

// The event data is encoded by jsonx.Marshal, which does not know the
// omitzero option (it would write the zero values encoding/json leaves
// out): no data type, nor any type inside one, may use it. The envelope,
// encoded by encoding/json, does.
func TestEventDataUsesNoOmitzero(t *testing.T) {
	for _, v := range []any{LeadReceived{}, LeadResolved{}, LeadUnresolved{}, LeadEnriched{}, LeadNotified{}} {
		if f := omitzeroFields(reflect.TypeOf(v)); len(f) > 0 {
			t.Errorf("omitzero in event data: %v", f)
		}
	}
	if f := omitzeroFields(reflect.TypeOf(Envelope{})); len(f) != 1 {
		t.Errorf("the envelope's omitzero fields: %v, want RunStartedAt", f)
	}
}
