from typing import Annotated, Any

from clarifai.runners.models.mcp_class import MCPModelClass
from fastmcp import FastMCP
from pydantic import Field

server = FastMCP("my-first-mcp-server", instructions="A simple MCP server with a few tools, a resource and a prompt.", stateless_http=True)


@server.tool("calculate_sum", description="Add two numbers together")
def sum(a: Annotated[Any, Field(description="first number")], b: Annotated[Any, Field(description="second number")]):
  return float(a) + float(b)


@server.tool("weather", description="Get the current weather of a city")
def weather(city: Annotated[str, Field(description="The city to get the weather for")]) -> str:
  return f"The weather in {city} is sunny, 22°C."


@server.tool("divide", description="Divide a by b")
def divide(a: Annotated[float, Field(description="the dividend")], b: Annotated[float, Field(description="the divisor")]) -> float:
  if b == 0:
    raise ValueError("cannot divide by zero")
  return a / b


# Static resource
@server.resource("config://version")
def get_version():
  return "2.0.1"


# Resource template: the city is part of the URI
@server.resource("weather://{city}/current")
def get_weather(city: str) -> dict:
  """Current weather for a city."""
  return {"city": city.capitalize(), "temperature": 22, "condition": "sunny"}


@server.prompt()
def summarize_request(text: str) -> str:
  """Generate a summary request prompt."""
  return f"Please summarize the following text:\n\n{text}"


class MyModelClass(MCPModelClass):

  def get_server(self) -> FastMCP:
    return server
