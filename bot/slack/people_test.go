package slack

import "testing"

// Text people wrote reaches Slack inert: a commit titled "<!channel>"
// pings nobody and forges no link.
func TestWordsEscapeUserText(t *testing.T) {
	got := Words().Text("<!channel> deploy & <https://evil.example|docs>")
	if want := "&lt;!channel&gt; deploy &amp; &lt;https://evil.example|docs&gt;"; got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
}
