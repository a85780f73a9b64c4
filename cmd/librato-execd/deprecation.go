package main

import (
	"log"
	"reflect"
	"runtime/debug"
	"strings"
)

// Telegraf's loader reports deprecated options only in a binary that carries
// a Telegraf version (-ldflags "-X github.com/influxdata/telegraf/internal.Version=…"):
// with the default "unknown" every deprecation counts as not yet in effect.
// An unstamped librato-execd reports set deprecated options itself, worded
// as Telegraf does; a stamped one leaves that to Telegraf.

func telegrafVersionStamped() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-ldflags" && strings.Contains(s.Value, "telegraf/internal.Version=") {
			return true
		}
	}
	return false
}

// warnDeprecatedOptions logs one warning per set option of plugin that has
// a `deprecated:"since;removal;notice"` tag, nested structs included.
func warnDeprecatedOptions(name string, plugin any) {
	walkStruct(reflect.ValueOf(plugin), func(f reflect.StructField, v reflect.Value) {
		tag := f.Tag.Get("deprecated")
		if tag == "" || v.IsZero() {
			return
		}
		parts := strings.SplitN(tag, ";", 3)
		since, removal, notice := parts[0], "", parts[len(parts)-1]
		if len(parts) == 3 {
			removal = parts[1]
		}
		option := f.Tag.Get("toml")
		if option == "" {
			option = f.Name
		}
		log.Printf("W! DeprecationWarning: Option %q of plugin %q deprecated since version %s and will be removed in %s: %s",
			option, name, since, removal, notice)
	})
}

func walkStruct(v reflect.Value, fn func(reflect.StructField, reflect.Value)) {
	v = reflect.Indirect(v)
	if v.Kind() != reflect.Struct {
		return
	}
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.PkgPath != "" {
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			walkStruct(v.Field(i), fn)
		}
		fn(f, v.Field(i))
	}
}
