package autoconfig

import (
	"bytes"
	"encoding/xml"
	"fmt"
)

// A tiny XML property-list encoder: just the types a configuration profile
// uses. Strings go through xml.EscapeText.

// plistDict is a dictionary that keeps its keys in the order given.
type plistDict []plistEntry

type plistEntry struct {
	Key   string
	Value any // string, int, bool, []any, plistDict
}

const plistHeader = xml.Header +
	`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n" +
	`<plist version="1.0">` + "\n"

// encodePlist writes root as an XML property list.
func encodePlist(root plistDict) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(plistHeader)
	if err := plistValue(&b, root, 0); err != nil {
		return nil, err
	}
	b.WriteString("</plist>\n")
	return b.Bytes(), nil
}

func plistValue(b *bytes.Buffer, v any, depth int) error {
	indent := bytes.Repeat([]byte("\t"), depth)
	b.Write(indent)
	switch v := v.(type) {
	case string:
		b.WriteString("<string>")
		if err := xml.EscapeText(b, []byte(v)); err != nil {
			return err
		}
		b.WriteString("</string>\n")
	case int:
		fmt.Fprintf(b, "<integer>%d</integer>\n", v)
	case bool:
		if v {
			b.WriteString("<true/>\n")
		} else {
			b.WriteString("<false/>\n")
		}
	case []any:
		b.WriteString("<array>\n")
		for _, e := range v {
			if err := plistValue(b, e, depth+1); err != nil {
				return err
			}
		}
		b.Write(indent)
		b.WriteString("</array>\n")
	case plistDict:
		b.WriteString("<dict>\n")
		for _, e := range v {
			b.Write(indent)
			b.WriteString("\t<key>")
			if err := xml.EscapeText(b, []byte(e.Key)); err != nil {
				return err
			}
			b.WriteString("</key>\n")
			if err := plistValue(b, e.Value, depth+1); err != nil {
				return err
			}
		}
		b.Write(indent)
		b.WriteString("</dict>\n")
	default:
		return fmt.Errorf("plist: unsupported type %T", v)
	}
	return nil
}
