package main

// encodeStatus writes a google.rpc.Status by hand (three fields need no generated code):
// the code, the message, and one google.protobuf.Any holding a google.rpc.ErrorInfo with
// the reason, so the bridge passes code, reason and details on unchanged (S14).
func encodeStatus(code int, message, reason string) []byte {
	info := appendBytes(nil, 1, []byte(reason))
	info = appendBytes(info, 2, []byte("payments.example"))
	anyMsg := appendBytes(nil, 1, []byte("type.googleapis.com/google.rpc.ErrorInfo"))
	anyMsg = appendBytes(anyMsg, 2, info)
	out := appendVarint(nil, 1<<3|0)
	out = appendVarint(out, uint64(code))
	out = appendBytes(out, 2, []byte(message))
	return appendBytes(out, 3, anyMsg)
}

// appendBytes appends a length-delimited field (wire type 2).
func appendBytes(b []byte, field int, value []byte) []byte {
	b = appendVarint(b, uint64(field)<<3|2)
	b = appendVarint(b, uint64(len(value)))
	return append(b, value...)
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}
