"""Simplified Chinese: token counts and costs grouped by thousands (12,345), as the gateway's
own consoles show them; Django's default for zh_Hans writes 12345."""

THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
