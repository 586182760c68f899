"""intake-wechat: the server endpoint WeChat calls for the district's Official Accounts."""
