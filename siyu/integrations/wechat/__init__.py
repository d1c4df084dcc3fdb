"""WeChat official account (公众号): parametric QR codes, subscribe events, template messages, web OAuth."""
