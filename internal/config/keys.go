package config

import (
	"encoding"
	"reflect"
	"sort"
	"strings"
)

// AcceptedKeys lists every key the TOML decoder accepts, as dotted paths
// with NAME for a table's free name ("jail.NAME.maxretry"); [defaults]
// takes a jail's keys. It is read off the decoder's own structs, so that
// the reference (Reference) can be checked against it and cannot drift.
func AcceptedKeys() []string {
	var out []string
	walkKeys(reflect.TypeFor[file](), "", &out)
	sort.Strings(out)
	return out
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func walkKeys(t reflect.Type, prefix string, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("toml")
		if tag == "-" {
			continue
		}
		if f.Anonymous && tag == "" {
			walkKeys(f.Type, prefix, out)
			continue
		}
		if !f.IsExported() {
			continue
		}
		name := strings.Split(tag, ",")[0]
		if name == "" {
			name = f.Name
		}
		key := prefix + name
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case reflect.PointerTo(ft).Implements(textUnmarshaler):
			*out = append(*out, key)
		case ft.Kind() == reflect.Map:
			walkKeys(ft.Elem(), key+".NAME.", out)
		case ft.Kind() == reflect.Struct:
			walkKeys(ft, key+".", out)
		default:
			*out = append(*out, key)
		}
	}
}
