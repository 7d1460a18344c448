"""The broker's MCP server: kernel tools over streamable HTTP at /mcp, and a stdio bridge."""
